"""The `dripper` command line: the root group plus one module of subcommands per area.

Commands are registered by name and imported when used, so that `dripper --help` and every
command start fast (importing them all takes over a second). `COMMANDS` names each one's
module and the first sentence of its help, which `dripper --help` lists; a test keeps them
equal to the commands' own.

Packages that build on dripper add commands through the `dripper.commands` entry point group
(a function that receives the root group and calls `add_lazy` or `add_command` on it): that is
how the Textual dashboard (`tui`) adds `dripper tui` without dripper ever importing it.
"""

from dripper.cli.app import main

COMMANDS: dict[str, tuple[str, str]] = {
    "apply": (
        "dripper.cli.enroll:apply_cmd",
        "Move enrollments to the edited versions of their curricula, after showing what changes.",
    ),
    "bench": (
        "dripper.cli.bench:bench_group",
        "Measure dripper on this machine; each benchmark prints one JSON line.",
    ),
    "check": (
        "dripper.cli.curricula:check_cmd",
        "Validate curriculum files or folders (default: the configured curricula folder).",
    ),
    "cohort": (
        "dripper.cli.enroll:cohort_group",
        "List cohorts, pause and resume them, move their course date.",
    ),
    "demo": (
        "dripper.cli.demo:demo_cmd",
        "Play six weeks of drip in seconds, on a temporary database, a local Telegram "
        "emulator, a local mail sink and a local IMAP mailbox, with simulated learners in six "
        "time zones.",
    ),
    "dkim": (
        "dripper.cli.dkim:dkim_group",
        "Sign outgoing mail with DKIM: make the key and the DNS record to publish.",
    ),
    "digest": (
        "dripper.cli.digest:digest_cmd",
        "Unanswered messages, silent learners, most-missed questions and channel changes.",
    ),
    "doctor": (
        "dripper.cli.doctor:doctor_cmd",
        "Check the configuration, database, bot, mail servers, keys and public URL, with fixes.",
    ),
    "enroll": (
        "dripper.cli.enroll:enroll_cmd",
        "Enroll learners in CURRICULUM_ID as a cohort whose course ended at --course-end.",
    ),
    "init": (
        "dripper.cli.setup:init_cmd",
        "Write a commented dripper.toml, an example learners.csv, canned-replies.yaml (the "
        "inbox's reusable answers), a starter curriculum in curricula/ (with the schema editors "
        "use to check it as you type) and hmac.key (a fresh key, mode 0600) to start from.",
    ),
    "invites": (
        "dripper.cli.invites:invites_cmd",
        "Print a personal Telegram link for each learner of a cohort who has not connected yet.",
    ),
    "learners": (
        "dripper.cli.learners:learners_group",
        "Import, list, pause, export and erase the learners who receive drips.",
    ),
    "migrate": (
        "dripper.cli.storage:migrate_cmd",
        "Bring the database schema up to date with this version of dripper.",
    ),
    "report": (
        "dripper.cli.cohort_report:report_cmd",
        "Per-step figures of a cohort: planned, delivered, failed, replied, answered and correct.",
    ),
    "run": (
        "dripper.cli.run:run_cmd",
        "Send every step when it is due, until SIGTERM or Ctrl-C (in-flight sends finish first).",
    ),
    "sandbox": (
        "dripper.cli.sandbox:sandbox_group",
        "Run local stand-ins for outside services, for tests, benchmarks and demos.",
    ),
    "schema": (
        "dripper.cli.curricula:schema_cmd",
        "Print the JSON Schema of the curriculum language (for editor autocompletion).",
    ),
    "status": (
        "dripper.cli.report:status_cmd",
        "Deliveries per state, cohort and channel, the next due time, learners who changed "
        "channel this week, and what needs a look: failed and uncertain deliveries, enrollments "
        "that cannot be planned, mail and updates received but not filed.",
    ),
    "trainers": (
        "dripper.cli.trainers:trainers_group",
        "Add trainers, connect their own Telegram chat, and say what they are told about.",
    ),
    "unenroll": (
        "dripper.cli.enroll:unenroll_cmd",
        "Take LEARNER (email or @handle) out of a drip: everything not sent yet is cancelled.",
    ),
    "timeline": (
        "dripper.cli.timeline:timeline_cmd",
        "Each step's due time for LEARNER (email or @handle), in UTC and in their local time, "
        "with the channel it went out on (- while not sent).",
    ),
}

for _name, (_target, _short_help) in COMMANDS.items():
    main.add_lazy(_name, _target, _short_help)

main.load_plugins_from("dripper.commands")

__all__ = ["main"]
