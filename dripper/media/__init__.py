"""Media the trainer can open: the files learners send, downloaded into a folder.

`folder` owns the layout on disk and the names of the kept files; `fetcher` is the loop that
downloads Telegram files (getFile, within the Bot API's 20 MB) and takes email attachments out
of the stored messages, within each learner's storage cap.
"""
