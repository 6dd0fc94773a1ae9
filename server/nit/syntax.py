"""NIT scripts: tokens, AST and the parser (with line/column errors and a caret).

The language (what the LLM may emit inside <nit> … </nit>):

    # comments start with '#' (or '//') and run to the end of the line
    $weather = weather.get(city="Beijing")            # a tool call; result bound to $weather
    $files   = files.list(paths=["/tmp", "~/docs"], limit=10)
    $job     = async web.crawl(url="https://example.org")   # starts now, result arrives later
    notify.send(text=$weather, level=2)                # a bare call (result discarded)
    $page    = await $job                              # waits for the async call
    $both    = await [$job, $other]                    # waits for several (a list of results)

- Statements are separated by newlines or ';'. Inside (...) and [...] newlines are free.
- Values: strings ("..." or '...', with \\n \\t \\\\ \\" \\' \\uXXXX escapes), numbers (int/float,
  optionally negative), true/false/null, lists [...], variables $name.
- Tool names are identifiers joined by '.' or ':' (location.get, task:add). Arguments are
  always named: key=value.
- `async call(...)` binds a handle at once; the call runs in the background. Using the
  handle as an argument waits for it implicitly; `await $h` waits explicitly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

TokenKind = Literal["VAR", "NAME", "NUMBER", "STRING", "PUNCT", "NEWLINE", "EOF"]
KEYWORDS = {"async", "await", "true", "false", "null"}


class NitError(Exception):
    """A parse or runtime error located in the script (1-based line and column)."""

    kind = "error"

    def __init__(self, message: str, line: int, column: int, source: str) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.source = source

    def source_line(self) -> str:
        lines = self.source.splitlines()
        return lines[self.line - 1] if 0 < self.line <= len(lines) else ""

    def render(self) -> str:
        """`line L, column C: message`, the offending line, and a caret under the bad token."""
        text = self.source_line()
        caret = "".join("\t" if ch == "\t" else " " for ch in text[: self.column - 1]) + "^"
        return f"{self.kind} at line {self.line}, column {self.column}: {self.message}\n    {text}\n    {caret}"

    def __str__(self) -> str:
        return self.render()


class NitSyntaxError(NitError):
    kind = "syntax error"


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    value: Any
    line: int
    column: int

    def describe(self) -> str:
        if self.kind == "EOF":
            return "the end of the script"
        if self.kind == "NEWLINE":
            return "the end of the line"
        return repr(self.text)


# ---------------------------------------------------------------- AST


@dataclass(frozen=True)
class Node:
    line: int
    column: int


@dataclass(frozen=True)
class Literal_(Node):
    value: Any


@dataclass(frozen=True)
class Var(Node):
    name: str


@dataclass(frozen=True)
class ListExpr(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Arg(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Call(Node):
    tool: str
    args: tuple[Arg, ...]
    is_async: bool = False


@dataclass(frozen=True)
class Await(Node):
    target: Expr  # a Var or a ListExpr of Vars (or any expression: a plain value awaits to itself)


Expr = Literal_ | Var | ListExpr | Call | Await


@dataclass(frozen=True)
class Statement(Node):
    target: str | None  # the variable assigned, if any
    expr: Expr


@dataclass(frozen=True)
class Script:
    statements: tuple[Statement, ...]
    source: str


# ---------------------------------------------------------------- lexer

_IDENT = re.compile(r"[^\W\d]\w*", re.UNICODE)
_NUMBER = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0", "/": "/"}


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    depth = 0
    i, line, line_start = 0, 1, 0
    n = len(source)

    def error(message: str, at: int) -> NitSyntaxError:
        return NitSyntaxError(message, line, at - line_start + 1, source)

    while i < n:
        ch = source[i]
        col = i - line_start + 1
        if ch == "\n":
            if depth == 0:
                tokens.append(Token("NEWLINE", "\n", None, line, col))
            i += 1
            line, line_start = line + 1, i
        elif ch in " \t\r\ufeff":
            i += 1
        elif ch == "#" or source.startswith("//", i):
            while i < n and source[i] != "\n":
                i += 1
        elif ch == ";":
            tokens.append(Token("NEWLINE", ";", None, line, col))
            i += 1
        elif ch in "([":
            depth += 1
            tokens.append(Token("PUNCT", ch, None, line, col))
            i += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
            tokens.append(Token("PUNCT", ch, None, line, col))
            i += 1
        elif ch in ",=":
            tokens.append(Token("PUNCT", ch, None, line, col))
            i += 1
        elif ch == "$":
            m = _IDENT.match(source, i + 1)
            if not m:
                raise error("a variable name must follow '$' (e.g. $result)", i)
            tokens.append(Token("VAR", source[i:m.end()], m.group(), line, col))
            i = m.end()
        elif ch in "\"'":
            start = i
            i += 1
            out: list[str] = []
            while True:
                if i >= n or source[i] == "\n":
                    raise error("unterminated string (missing closing quote)", start)
                c = source[i]
                if c == ch:
                    i += 1
                    break
                if c == "\\":
                    if i + 1 >= n:
                        raise error("unterminated string (missing closing quote)", start)
                    e = source[i + 1]
                    if e == "u":
                        hexdigits = source[i + 2:i + 6]
                        if not re.fullmatch(r"[0-9a-fA-F]{4}", hexdigits):
                            raise error("\\u needs four hex digits", i)
                        out.append(chr(int(hexdigits, 16)))
                        i += 6
                        continue
                    if e not in _ESCAPES:
                        raise error(f"unknown escape \\{e}", i)
                    out.append(_ESCAPES[e])
                    i += 2
                    continue
                out.append(c)
                i += 1
            tokens.append(Token("STRING", source[start:i], "".join(out), line, col))
        elif (m := _NUMBER.match(source, i)) and (ch != "-" or m.end() > i + 1):
            text = m.group()
            value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
            if m.end() < n and (source[m.end()].isalpha() or source[m.end()] == "_"):
                raise error(f"unexpected character {source[m.end()]!r} after the number {text}", m.end())
            tokens.append(Token("NUMBER", text, value, line, col))
            i = m.end()
        elif m := _IDENT.match(source, i):
            end = m.end()
            # dotted / namespaced tool names: a.b.c, task:add
            while end < n - 1 and source[end] in ".:" and (m2 := _IDENT.match(source, end + 1)):
                end = m2.end()
            text = source[i:end]
            tokens.append(Token("NAME", text, text, line, col))
            i = end
        else:
            raise error(f"unexpected character {ch!r}", i)
    tokens.append(Token("EOF", "", None, line, i - line_start + 1))
    return tokens


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.pos = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.pos += 1
        return tok

    def error(self, message: str, tok: Token) -> NitSyntaxError:
        return NitSyntaxError(message, tok.line, tok.column, self.source)

    def expect(self, text: str, context: str) -> Token:
        tok = self.peek()
        if tok.kind == "PUNCT" and tok.text == text:
            return self.next()
        raise self.error(f"expected {text!r} {context}, found {tok.describe()}", tok)

    def script(self) -> Script:
        statements: list[Statement] = []
        while True:
            while self.peek().kind == "NEWLINE":
                self.next()
            if self.peek().kind == "EOF":
                return Script(tuple(statements), self.source)
            statements.append(self.statement())
            tok = self.peek()
            if tok.kind not in ("NEWLINE", "EOF"):
                raise self.error(f"expected the end of the statement, found {tok.describe()}", tok)

    def statement(self) -> Statement:
        tok = self.peek()
        if tok.kind == "VAR" and self.peek(1).kind == "PUNCT" and self.peek(1).text == "=":
            self.next()
            self.next()
            if self.peek().kind in ("NEWLINE", "EOF"):
                raise self.error(f"expected a value after '{tok.text} =', found {self.peek().describe()}",
                                 self.peek())
            return Statement(tok.line, tok.column, tok.value, self.expr())
        return Statement(tok.line, tok.column, None, self.expr())

    def expr(self) -> Expr:
        tok = self.peek()
        if tok.kind == "NAME" and tok.text == "async":
            self.next()
            target = self.peek()
            if target.kind != "NAME" or target.text in KEYWORDS:
                raise self.error(f"expected a tool call after 'async', found {target.describe()}", target)
            call = self.call()
            return Call(tok.line, tok.column, call.tool, call.args, is_async=True)
        if tok.kind == "NAME" and tok.text == "await":
            self.next()
            if self.peek().kind in ("NEWLINE", "EOF"):
                raise self.error("expected a $variable (or a list of them) after 'await'", self.peek())
            return Await(tok.line, tok.column, self.expr())
        if tok.kind == "NAME" and tok.text in ("true", "false", "null"):
            self.next()
            return Literal_(tok.line, tok.column, {"true": True, "false": False, "null": None}[tok.text])
        if tok.kind == "NAME":
            return self.call()
        if tok.kind in ("STRING", "NUMBER"):
            self.next()
            return Literal_(tok.line, tok.column, tok.value)
        if tok.kind == "VAR":
            self.next()
            return Var(tok.line, tok.column, tok.value)
        if tok.kind == "PUNCT" and tok.text == "[":
            return self.list_()
        raise self.error(f"expected a value (string, number, list, $variable or tool call), found {tok.describe()}",
                         tok)

    def call(self) -> Call:
        name = self.next()
        opening = self.peek()
        if not (opening.kind == "PUNCT" and opening.text == "("):
            raise self.error(f"expected '(' after the tool name {name.text!r}"
                             f"{' (strings need quotes)' if opening.kind in ('NAME', 'NEWLINE', 'EOF') else ''}, "
                             f"found {opening.describe()}", opening)
        self.next()
        args: list[Arg] = []
        seen: set[str] = set()
        while not (self.peek().kind == "PUNCT" and self.peek().text == ")"):
            key = self.peek()
            if key.kind != "NAME" or key.text in KEYWORDS or "." in key.text or ":" in key.text:
                if key.kind == "EOF":
                    raise self.error(f"the call to {name.text!r} is never closed: expected ')'", key)
                raise self.error(f"expected an argument name (key=value) in the call to {name.text!r}, "
                                 f"found {key.describe()}", key)
            self.next()
            self.expect("=", f"after the argument name {key.text!r} (arguments are key=value)")
            if key.text in seen:
                raise self.error(f"argument {key.text!r} is given twice", key)
            seen.add(key.text)
            args.append(Arg(key.line, key.column, key.text, self.expr()))
            sep = self.peek()
            if sep.kind == "PUNCT" and sep.text == ",":
                self.next()
                continue
            if sep.kind == "EOF":
                raise self.error(f"the call to {name.text!r} is never closed: expected ')'", sep)
            if not (sep.kind == "PUNCT" and sep.text == ")"):
                raise self.error(f"expected ',' or ')' in the call to {name.text!r}, found {sep.describe()}", sep)
        self.next()
        return Call(name.line, name.column, name.text, tuple(args))

    def list_(self) -> ListExpr:
        opening = self.next()
        items: list[Expr] = []
        while not (self.peek().kind == "PUNCT" and self.peek().text == "]"):
            if self.peek().kind == "EOF":
                raise self.error("the list is never closed: expected ']'", self.peek())
            items.append(self.expr())
            sep = self.peek()
            if sep.kind == "PUNCT" and sep.text == ",":
                self.next()
                continue
            if sep.kind == "EOF":
                raise self.error("the list is never closed: expected ']'", sep)
            if not (sep.kind == "PUNCT" and sep.text == "]"):
                raise self.error(f"expected ',' or ']' in the list, found {sep.describe()}", sep)
        self.next()
        return ListExpr(opening.line, opening.column, tuple(items))


def parse(source: str) -> Script:
    """Parse a script (the text between <nit> and </nit>); NitSyntaxError on the first error."""
    return _Parser(source).script()


_BLOCK = re.compile(r"<nit>(.*?)</nit>", re.DOTALL | re.IGNORECASE)


def extract_scripts(text: str) -> list[str]:
    """The <nit>…</nit> blocks of an LLM reply, in order (fenced code inside is unwrapped)."""
    out = []
    for m in _BLOCK.finditer(text):
        body = m.group(1).strip("\n")
        fenced = re.fullmatch(r"\s*```[\w-]*\n(.*?)\n?```\s*", body, re.DOTALL)
        out.append(fenced.group(1) if fenced else body)
    return out
