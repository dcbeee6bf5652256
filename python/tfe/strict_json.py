"""The strict JSON parser of model-file headers, the same grammar and messages as the C++
library's (csrc/infer/model_file.cpp, class JsonParser).

Why not ``json.loads``: it accepts what the C++ reader refuses (NaN/Infinity, duplicate
keys, lone surrogates, numbers beyond float64), raises RecursionError on deep nesting and
reports other positions. Both readers must refuse the same files with the same message, so
this is a port of the C++ parser: RFC 8259, valid UTF-8, no duplicate keys, nesting depth
at most MAX_DEPTH, positions in bytes. Tokens are matched with regular expressions, so a
long string or run of digits costs one match, not a Python loop per byte.

Values: dict (keys unique, in file order), list, str, int (an integer literal that fits in
int64), float (any other number), True/False, None.
"""

import re

MAX_DEPTH = 64  # JsonParser::kMaxDepth
MAX_SHOWN = 64  # kMaxShown: bytes of file text quoted in a message

_WS = re.compile(rb"[ \t\n\r]*")
_PLAIN = re.compile(rb'[^"\\\x00-\x1f\x80-\xff]*')  # string bytes needing no attention
_DIGITS = re.compile(rb"[0-9]*")
_ESCAPES = {ord('"'): '"', ord("\\"): "\\", ord("/"): "/", ord("b"): "\b", ord("f"): "\f",
            ord("n"): "\n", ord("r"): "\r", ord("t"): "\t"}
_HEX = frozenset(b"0123456789abcdefABCDEF")


class JsonError(ValueError):
    pass


def printable(text):
    """Text from a file, fit for a one-line message (as the C++ printable()): control bytes as
    \\xNN, at most MAX_SHOWN bytes of UTF-8, cut at a character boundary, then "..."."""
    b = text.encode("utf-8", "surrogatepass")
    n = len(b)
    if n > MAX_SHOWN:
        n = MAX_SHOWN
        while n > 0 and (b[n] & 0xC0) == 0x80:
            n -= 1
    parts, run = [], bytearray()
    for c in b[:n]:
        if c < 0x20 or c == 0x7F:
            parts.append(run.decode("utf-8", "replace"))
            run = bytearray()
            parts.append(f"\\x{c:02x}")
        else:
            run.append(c)
    parts.append(run.decode("utf-8", "replace"))
    return "".join(parts) + ("..." if n < len(b) else "")


class _Parser:
    def __init__(self, data, what):
        self.p, self.n, self.i, self.what = data, len(data), 0, what

    def error(self, why):
        raise JsonError(f"{self.what}: invalid JSON ({why} at byte {self.i})")

    def peek(self):
        return self.p[self.i] if self.i < self.n else 0

    def skip_ws(self):
        self.i = _WS.match(self.p, self.i).end()

    def document(self):
        self.skip_ws()
        v = self.value(0)
        self.skip_ws()
        if self.i != self.n:
            self.error("unexpected characters after the JSON value")
        return v

    def literal(self, lit, value):
        if self.p[self.i:self.i + len(lit)] != lit:
            self.error("invalid literal")
        self.i += len(lit)
        return value

    def value(self, depth):
        if depth > MAX_DEPTH:
            self.error(f"nesting deeper than {MAX_DEPTH}")
        if self.i >= self.n:
            self.error("unexpected end of input")
        c = self.p[self.i]
        if c == 0x7B:  # {
            return self.object(depth)
        if c == 0x5B:  # [
            return self.array(depth)
        if c == 0x22:  # "
            return self.string()
        if c == 0x74:
            return self.literal(b"true", True)
        if c == 0x66:
            return self.literal(b"false", False)
        if c == 0x6E:
            return self.literal(b"null", None)
        if c == 0x2D or 0x30 <= c <= 0x39:
            return self.number()
        self.error("unexpected character")

    def object(self, depth):
        self.i += 1
        self.skip_ws()
        out = {}
        if self.peek() == 0x7D:
            self.i += 1
            return out
        while True:
            self.skip_ws()
            if self.peek() != 0x22:
                self.error("expected a string key")
            key = self.string()
            if key in out:
                self.error(f'duplicate key "{printable(key)}"')
            self.skip_ws()
            if self.peek() != 0x3A:
                self.error("expected ':'")
            self.i += 1
            self.skip_ws()
            out[key] = self.value(depth + 1)
            self.skip_ws()
            c = self.peek()
            self.i += c in (0x2C, 0x7D)
            if c == 0x7D:
                return out
            if c != 0x2C:
                self.error("expected ',' or '}'")

    def array(self, depth):
        self.i += 1
        self.skip_ws()
        out = []
        if self.peek() == 0x5D:
            self.i += 1
            return out
        while True:
            self.skip_ws()
            out.append(self.value(depth + 1))
            self.skip_ws()
            c = self.peek()
            self.i += c in (0x2C, 0x5D)
            if c == 0x5D:
                return out
            if c != 0x2C:
                self.error("expected ',' or ']'")

    def hex4(self):
        if self.n - self.i < 4:
            self.error("truncated \\u escape")
        u = 0
        for _ in range(4):
            c = self.p[self.i]
            self.i += 1
            if c not in _HEX:
                self.error("bad hex digit in \\u escape")
            u = u * 16 + int(chr(c), 16)
        return u

    def utf8_sequence(self, out):
        c = self.p[self.i]
        if 0xC2 <= c <= 0xDF:
            length, cp = 2, c & 0x1F
        elif 0xE0 <= c <= 0xEF:
            length, cp = 3, c & 0x0F
        elif 0xF0 <= c <= 0xF4:
            length, cp = 4, c & 0x07
        else:
            self.error("invalid UTF-8")
        if self.n - self.i < length:
            self.error("truncated UTF-8 sequence")
        for k in range(1, length):
            d = self.p[self.i + k]
            if d & 0xC0 != 0x80:
                self.error("invalid UTF-8")
            cp = (cp << 6) | (d & 0x3F)
        if (length == 3 and (cp < 0x800 or 0xD800 <= cp <= 0xDFFF)) or \
                (length == 4 and (cp < 0x10000 or cp > 0x10FFFF)):
            self.error("invalid UTF-8")
        out.append(chr(cp))
        self.i += length

    def string(self):
        self.i += 1
        out = []
        while True:
            m = _PLAIN.match(self.p, self.i)
            if m.end() > self.i:
                out.append(m.group().decode("ascii"))
                self.i = m.end()
            if self.i >= self.n:
                self.error("unterminated string")
            c = self.p[self.i]
            if c == 0x22:
                self.i += 1
                return "".join(out)
            if c < 0x20:
                self.error("control character in string")
            if c >= 0x80:
                self.utf8_sequence(out)
                continue
            self.i += 1  # a backslash
            if self.i >= self.n:
                self.error("unterminated escape")
            e = self.p[self.i]
            self.i += 1
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                continue
            if e != 0x75:  # u
                self.error("invalid escape")
            cp = self.hex4()
            if 0xDC00 <= cp <= 0xDFFF:
                self.error("unpaired low surrogate")
            if 0xD800 <= cp <= 0xDBFF:
                if self.n - self.i < 2 or self.p[self.i:self.i + 2] != b"\\u":
                    self.error("unpaired high surrogate")
                self.i += 2
                lo = self.hex4()
                if not 0xDC00 <= lo <= 0xDFFF:
                    self.error("unpaired high surrogate")
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
            out.append(chr(cp))

    def digits(self):
        self.i = _DIGITS.match(self.p, self.i).end()

    def number(self):
        start, integral = self.i, True
        if self.peek() == 0x2D:
            self.i += 1
        c = self.peek()
        if c == 0x30:
            self.i += 1
        elif 0x31 <= c <= 0x39:
            self.digits()
        else:
            self.error("invalid number")
        if self.peek() == 0x2E:
            integral = False
            self.i += 1
            if not 0x30 <= self.peek() <= 0x39:
                self.error("invalid number")
            self.digits()
        if self.peek() in (0x65, 0x45):
            integral = False
            self.i += 1
            if self.peek() in (0x2B, 0x2D):
                self.i += 1
            if not 0x30 <= self.peek() <= 0x39:
                self.error("invalid number")
            self.digits()
        text = self.p[start:self.i]
        # std::from_chars: out of range when the value rounds to infinity, or to zero while
        # its digits are not all zero.
        x = float(text)
        mantissa = re.split(rb"[eE]", text)[0]
        if x in (float("inf"), float("-inf")) or (x == 0.0 and mantissa.strip(b"-0.") != b""):
            self.error("number out of range")
        if integral:
            digits = text.lstrip(b"-")
            if len(digits) <= 19:
                v = int(text)
                if -2**63 <= v < 2**63:
                    return v
        return x


def parse(data, what):
    """One JSON value from ``data`` (bytes); JsonError("<what>: invalid JSON (...)") otherwise."""
    return _Parser(bytes(data), what).document()
