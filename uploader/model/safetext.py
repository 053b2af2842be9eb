"""The one way out for text that did not come from the program: `safe_text`.

Everything printed or logged from outside (a path, a blob or column name, a certificate subject, a service's
answer, an HTTP status line, an argument's value, a third-party library's log message) passes `safe_text`:

1. Secrets are withheld before anything else: PEM blocks and anything mentioning a private key, JWTs (a
   signed client assertion or an access token), bearer tokens, `client_assertion=` / `client_secret=` /
   `access_token` / `password=` / SAS `sig=` values, and the `user:password@` part of URLs. Each is replaced
   by a `[... withheld]` marker that says what it was, never any of it.
2. Characters that could forge or hide output are written as `\\xNN` / `\\uNNNN` / `\\UNNNNNNNN` escapes:
   C0/C1 controls, line and paragraph separators, format characters (bidi marks, overrides and isolates,
   zero-width characters, the BOM, the tag block U+E0000-U+E007F), private-use and unassigned code points,
   lone surrogates (undecodable bytes), variation selectors, spaces other than U+0020, and the characters
   that draw nothing (U+115F, U+1160, U+3164, U+FFA0 Hangul fillers, U+2800 the blank Braille pattern,
   U+034F, U+17B4/U+17B5, U+180B-U+180F). A backslash is doubled, so an escape cannot be forged either.
3. The result is cut to `limit` characters (then `...`).

`escape_line` is the same escaper for a whole line of output, as the one writer (uploader/model/sink.py)
applies it to everything the programs print: secrets withheld (with the narrower rules prose needs: a line that
merely mentions a private key is kept, while PEM blocks are not), the same characters escaped, nothing cut and
backslashes left alone, so a line whose values already passed `safe_text` comes out unchanged.

`INVISIBLE_CLASS` is the same set as a regular-expression class, for rules that refuse such characters in
values (the UPN rule in uploader/check/rules.py).
"""

from __future__ import annotations

import re
import unicodedata

#: Unicode categories that never belong in a line of output: controls, format characters, surrogates,
#: private use, unassigned, line and paragraph separators.
_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

#: Characters outside those categories that draw nothing or change the look of their neighbours
#: (https://www.unicode.org/reports/tr51/ for variation selectors; the Hangul fillers and the blank Braille
#: pattern are the usual "invisible" name characters).
_EXPLICIT_RANGES: tuple[tuple[int, int], ...] = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong / jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels (invisible)
    (0x180B, 0x180F),  # Mongolian free variation selectors and vowel separator
    (0x2800, 0x2800),  # Braille pattern blank
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xE0000, 0xE007F),  # tags
    (0xE0100, 0xE01EF),  # variation selectors supplement
)

#: A regular-expression class of the characters `safe_text` escapes that may appear in one-line values:
#: everything above (C0/C1 controls, format characters, separators, the explicit ranges), for rules that
#: must refuse them (a UPN holding one looks like another address).
INVISIBLE_CLASS = (
    "\x00-\x1f\x7f-\x9f\u00a0\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2000-\u200f"
    "\u2028-\u202f\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)

DEFAULT_LIMIT = 300

_PEM_BLOCK = re.compile(r"-----BEGIN[^\n-]{0,80}-----.*?(?:-----END[^\n-]{0,80}-----|\Z)", re.DOTALL)
_PRIVATE_KEY = re.compile(r"PRIVATE\s*KEY", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]{6,}(?:\.[A-Za-z0-9_\-]*){0,2}")
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9_\-+/=.~%]+")
_SECRET_PARAM = re.compile(
    r"(?i)\b(client_assertion|client_secret|access_token|refresh_token|id_token|assertion|password|passwd|pwd"
    r"|secret|sig|signature|token|apikey|api_key)(\"?\s*[:=]\s*\"?)([^\s&\"',;}]+)")
#: `scheme://user:password@`: everything between `//` and the last `@` before the path (a password may hold `@`).
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,20}://)([^/\s?#]*)@")
#: `user:password@host` without a scheme (IDENTITY_ENDPOINT=admin:S3cr3t@127.0.0.1:9): a word, a colon and
#: anything up to the last `@` before a space or slash, at the start of the text or after a space, quote,
#: bracket, `=`, `,`, `;` or `/` (such a value taken for a relative path is echoed after a folder); an e-mail
#: address has no colon before its `@` and is left alone.
_BARE_CREDENTIALS = re.compile(r"(?<![^\s\"'(<\[{=,;>/])[^\s/@:\"'<>=]+:[^\s/\"'<>]*@")
#: The tail of a PEM block whose start was cut off: everything before `-----END ...-----`.
_PEM_TAIL = re.compile(r"(?s).*?-----END[^\n-]{0,80}-----")
#: A PEM body line standing alone (its block's BEGIN line written separately): a word of 40 or more base64
#: characters, upper and lower case letters and digits among them, between spaces, quotes, brackets or `=`/`:`
#: (a resource ID or a path has `.`, `-` or `_` in it; a hex thumbprint has one case).
_PEM_BODY = re.compile(r"(?<![^\s\"'=:,(\[{<])[A-Za-z0-9+/]{40,}={0,2}(?![^\s\"',;)\]}>])")


def _pem_body(match: re.Match[str]) -> str:
    token = match.group(0)
    if any(c.isupper() for c in token) and any(c.islower() for c in token) and any(c.isdigit() for c in token):
        return "[key material withheld]"
    return token


#: For whole lines of the program's own prose (escape_line): bearer tokens only when token-long, and
#: `name=value` / `"name": "value"` (not "keep it secret: --certificate FILE").
_LINE_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9_\-+/=.~%]{20,}")
_LINE_SECRET_PARAM = re.compile(
    r"(?i)\b(client_assertion|client_secret|access_token|refresh_token|id_token|assertion|password|passwd|pwd"
    r"|secret|sig|signature|token|apikey|api_key)(=|\"\s*:\s*\")([^\s&\"',;}]+)")


def withhold_secrets(text: str, *, prose: bool = False) -> str:
    """`text` with key material, tokens, assertions and URL credentials replaced by a marker saying what was
    withheld (never any part of it).

    prose=True: `text` is a whole line the program wrote (escape_line): a mention of "private key" is kept, and
    the bearer and `name: value` rules are the narrower ones above; PEM blocks, their cut-off tails, JWTs, URL
    credentials and `name=value` secrets are withheld all the same, and so is a PEM body line standing alone."""
    text = _PEM_BLOCK.sub("[PEM block withheld]", text)
    if "-----END" in text:
        text = _PEM_TAIL.sub("[PEM block withheld]", text)
    if not prose and _PRIVATE_KEY.search(text):
        return "[withheld: it mentions a private key]"
    text = _URL_CREDENTIALS.sub(r"\1[credentials withheld]@", text)
    if "@" in text:
        text = _BARE_CREDENTIALS.sub("[credentials withheld]@", text)
    text = _JWT.sub("[token withheld]", text)
    if prose:
        text = _PEM_BODY.sub(_pem_body, text)
    text = (_LINE_BEARER if prose else _BEARER).sub(lambda m: f"{m.group(1)} [token withheld]", text)
    return (_LINE_SECRET_PARAM if prose else _SECRET_PARAM).sub(lambda m: f"{m.group(1)}{m.group(2)}[withheld]",
                                                                  text)


def is_invisible(ch: str) -> bool:
    """True for a character `safe_text` escapes (see the module's docstring)."""
    code = ord(ch)
    if code < 0x80:
        return code < 0x20 or code == 0x7F
    if unicodedata.category(ch) in _CATEGORIES or (unicodedata.category(ch) == "Zs"):
        return True
    return any(low <= code <= high for low, high in _EXPLICIT_RANGES)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def safe_text(value: object, limit: int = DEFAULT_LIMIT, *, secrets: bool = True) -> str:
    """`value` fit for one line of output in any encoding: secrets withheld, invisible and control characters
    escaped, at most `limit` characters (then `...`). Bytes are decoded as UTF-8 (undecodable bytes escaped).

    `secrets=False` skips the withholding, for text already known to hold none (never for a service's answer).
    """
    if isinstance(value, bytes | bytearray):
        text = bytes(value[: limit * 4 + 4096]).decode("utf-8", "surrogateescape")
    else:
        text = str(value)
    # Bound the work before the patterns run (a 300 MB "name" is cut, not scanned); the cut part cannot hold a
    # withheld secret's tail that matters, because what is left is withheld or cut again below.
    cut = len(text) > limit * 4 + 4096
    if cut:
        text = text[: limit * 4 + 4096]
    if secrets:
        text = withhold_secrets(text)
    out: list[str] = []
    size = 0
    for ch in text:
        piece = "\\\\" if ch == "\\" else _escape(ch) if is_invisible(ch) else ch
        if size + len(piece) > limit:
            cut = True
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + ("..." if cut else "")


#: Anything but printable ASCII: the only characters escape_line must look at one by one.
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


def _escape_match(match: re.Match[str]) -> str:
    ch = match.group(0)
    return _escape(ch) if is_invisible(ch) else ch


def escape_line(text: str) -> str:
    """One whole line of output, as the writer (uploader/model/sink.py) writes it: secrets withheld
    (`withhold_secrets(prose=True)`), every character `safe_text` escapes written as its escape (a line break
    inside `text` too), nothing cut, backslashes kept as they are (text that passed `safe_text` is unchanged)."""
    text = withhold_secrets(text, prose=True)
    if _NOT_PRINTABLE_ASCII.search(text) is None:
        return text
    return _NOT_PRINTABLE_ASCII.sub(_escape_match, text)
