"""Telegram's HTML parse mode as the Bot API applies it: plain text, entities, and its error texts.

Follows TDLib's `parse_html` (the code behind the Bot API): the same supported tags, the same
entity decoding (`&lt; &gt; &amp; &quot;` and numeric references, anything else stays literal), the
same error messages with byte offsets into the UTF-8 text, and entity offsets in UTF-16 units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SUPPORTED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SIMPLE_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# TDLib's is_space: the C string's terminating NUL counts as a space, so "end of text" does too.
_SPACES = frozenset(" \t\r\n\v\0")
_SPECIAL = re.compile(r"[<&]")
_ALPHA = re.compile(r"[A-Za-z]*")
_DIGITS = re.compile(r"[0-9]*")
_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]*")
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.\-]*")
_SURROGATES = re.compile("[\ud800-\udfff]")

JSONDict = dict[str, Any]


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; the message is Telegram's own wording."""


@dataclass(frozen=True, slots=True)
class ParsedText:
    """Text after entity parsing and its entities as Bot API MessageEntity objects."""

    text: str
    entities: list[JSONDict]


@dataclass(slots=True)
class _OpenTag:
    name: str
    argument: str
    utf16_offset: int
    text_position: int


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8", "surrogatepass"))


def _char(source: str, index: int) -> str:
    return source[index] if index < len(source) else "\0"


def _decode_entity(source: str, start: int) -> tuple[str, int] | None:
    """Decode the character reference at `source[start] == "&"`: (character, index after it)."""
    end = start + 1
    if _char(source, end) == "#":
        end += 1
        hexadecimal = _char(source, end) == "x"
        if hexadecimal:
            end += 1
        pattern = _HEX_DIGITS if hexadecimal else _DIGITS
        match = pattern.match(source, end)
        digits = match.group() if match else ""
        end += len(digits)
        if not digits or end - start >= 10:
            return None
        code = int(digits, 16 if hexadecimal else 10)
        if code == 0 or code >= 0x10FFFF:
            return None
        decoded = chr(code)
    else:
        match = _ALPHA.match(source, end)
        name = match.group() if match else ""
        end += len(name)
        if name not in _NAMED_ENTITIES:
            return None
        decoded = _NAMED_ENTITIES[name]
    if _char(source, end) == ";":
        end += 1
    return decoded, end


def _attribute_value(source: str, index: int) -> tuple[str, int]:
    """Read an attribute value (name token or quoted string) starting at `index`."""
    quote = _char(source, index)
    if quote not in "'\"":
        match = _NAME_TOKEN.match(source, index)
        token = match.group() if match else ""
        end = index + len(token)
        if _char(source, end) not in _SPACES and _char(source, end) != ">":
            raise EntityParseError(
                f"Unexpected end of name token at byte offset {_byte_offset(source, index)}"
            )
        return token.lower(), end
    index += 1
    value: list[str] = []
    while index < len(source) and source[index] != quote:
        if source[index] == "&":
            decoded = _decode_entity(source, index)
            if decoded is not None:
                value.append(decoded[0])
                index = decoded[1]
                continue
        value.append(source[index])
        index += 1
    if index < len(source):
        index += 1
    return "".join(value), index


def _start_tag(source: str, begin: int, utf16_offset: int, position: int) -> tuple[_OpenTag, int]:
    """Read a start tag whose '<' is at `begin`; returns the tag and the index of its '>'."""
    index = begin + 1
    while _char(source, index) not in _SPACES and source[index] != ">":
        index += 1
    begin_bytes = _byte_offset(source, begin)
    if index >= len(source):
        raise EntityParseError(f"Unclosed start tag at byte offset {begin_bytes}")
    name = source[begin + 1 : index].lower()
    if name not in SUPPORTED_TAGS:
        raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {begin_bytes}')
    argument = ""
    while _char(source, index) != ">":
        while index < len(source) and source[index] in _SPACES:
            index += 1
        if _char(source, index) == ">":
            break
        attribute_begin = index
        while _char(source, index) not in _SPACES and source[index] not in "=>/\"'":
            index += 1
        attribute = source[attribute_begin:index]
        if not attribute:
            raise EntityParseError(
                f'Empty attribute name in the tag "{name}" at byte offset {begin_bytes}'
            )
        while index < len(source) and source[index] in _SPACES:
            index += 1
        if _char(source, index) != "=":
            if index >= len(source):
                raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {begin_bytes}')
            if name == "blockquote" and attribute == "expandable":
                argument = "1"
            continue
        index += 1
        while index < len(source) and source[index] in _SPACES:
            index += 1
        if index >= len(source):
            raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {begin_bytes}')
        value, index = _attribute_value(source, index)
        if index >= len(source):
            raise EntityParseError(f"Unclosed start tag at byte offset {begin_bytes}")
        argument = _tag_argument(name, attribute, value, argument)
    if name == "span" and argument != "spoiler":
        raise EntityParseError(
            f'Tag "span" must have class "tg-spoiler" at byte offset {begin_bytes}'
        )
    return _OpenTag(name, argument, utf16_offset, position), index


def _tag_argument(name: str, attribute: str, value: str, current: str) -> str:
    if (name, attribute) in {("a", "href"), ("tg-emoji", "emoji-id")}:
        return value
    if name == "code" and attribute == "class" and value.startswith("language-"):
        return value[len("language-") :]
    if name == "span" and attribute == "class" and value.startswith("tg-"):
        return value[len("tg-") :]
    if name == "blockquote" and attribute == "expandable":
        return "1"
    return current


def _add_entity(entities: list[JSONDict], tag: _OpenTag, length: int, text: str) -> None:
    offset = tag.utf16_offset
    last = entities[-1] if entities else None
    same_span = last is not None and last["offset"] == offset and last["length"] == length
    if tag.name in _SIMPLE_ENTITY_TYPES:
        entities.append(
            {"offset": offset, "length": length, "type": _SIMPLE_ENTITY_TYPES[tag.name]}
        )
    elif tag.name == "tg-emoji":
        if not tag.argument.isdigit() or not 0 < int(tag.argument) < 2**63:
            raise EntityParseError("Invalid custom emoji identifier specified")
        entities.append(
            {
                "offset": offset,
                "length": length,
                "type": "custom_emoji",
                "custom_emoji_id": tag.argument,
            }
        )
    elif tag.name == "a":
        url = tag.argument or text[tag.text_position :]
        if url:
            entities.append({"offset": offset, "length": length, "type": "text_link", "url": url})
    elif tag.name == "pre":
        if last is not None and same_span and last["type"] == "code" and "language" in last:
            last["type"] = "pre"
        else:
            entities.append({"offset": offset, "length": length, "type": "pre"})
    elif tag.name == "code":
        if last is not None and same_span and last["type"] == "pre" and tag.argument:
            last["language"] = tag.argument
        else:
            entity: JSONDict = {"offset": offset, "length": length, "type": "code"}
            if tag.argument:
                entity["language"] = tag.argument
            entities.append(entity)
    elif tag.name == "blockquote":
        kind = "expandable_blockquote" if tag.argument else "blockquote"
        entities.append({"offset": offset, "length": length, "type": kind})


def parse_html(source: str) -> ParsedText:
    """Parse Telegram HTML into plain text and entities, or raise `EntityParseError`."""
    pieces: list[str] = []
    text_length = 0
    utf16_offset = 0
    nested: list[_OpenTag] = []
    entities: list[JSONDict] = []
    index = 0
    size = len(source)
    while index < size:
        match = _SPECIAL.search(source, index)
        stop = match.start() if match else size
        if stop > index:
            chunk = source[index:stop]
            pieces.append(chunk)
            text_length += len(chunk)
            utf16_offset += utf16_len(chunk)
            index = stop
            if index >= size:
                break
        if source[index] == "&":
            decoded = _decode_entity(source, index)
            if decoded is None:
                pieces.append("&")
                text_length += 1
                utf16_offset += 1
                index += 1
            else:
                pieces.append(decoded[0])
                text_length += 1
                utf16_offset += utf16_len(decoded[0])
                index = decoded[1]
            continue
        begin = index
        if _char(source, begin + 1) != "/":
            tag, index = _start_tag(source, begin, utf16_offset, text_length)
            nested.append(tag)
            index += 1
            continue
        begin_bytes = _byte_offset(source, begin)
        if not nested:
            raise EntityParseError(f"Unexpected end tag at byte offset {begin_bytes}")
        index = begin + 2
        while _char(source, index) not in _SPACES and source[index] != ">":
            index += 1
        end_name = source[begin + 2 : index].lower()
        while index < size and source[index] in _SPACES:
            index += 1
        if _char(source, index) != ">":
            raise EntityParseError(f"Unclosed end tag at byte offset {begin_bytes}")
        index += 1
        tag = nested.pop()
        if end_name and end_name != tag.name:
            raise EntityParseError(
                f'Unmatched end tag at byte offset {begin_bytes}, expected "</{tag.name}>", '
                f'found "</{end_name}>"'
            )
        if utf16_offset > tag.utf16_offset:
            _add_entity(entities, tag, utf16_offset - tag.utf16_offset, "".join(pieces))
    if nested:
        raise EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{nested[-1].name}"'
        )
    text = "".join(pieces)
    if _SURROGATES.search(text):
        raise EntityParseError(
            "Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units"
        )
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return ParsedText(text, entities)
