"""NIT parser: the language's forms, and errors with exact positions and a caret."""

from __future__ import annotations

import pytest

from server.nit import NitSyntaxError, extract_scripts, parse
from server.nit.syntax import Await, Call, ListExpr, Literal_, Var


def test_statements_values_and_names() -> None:
    script = parse(
        "# plan\n"
        "$w = weather.get(city=\"北京\", days=[1, 2.5, -3, 1e3], raw=true, none=null)  // trailing comment\n"
        "$j = async web.crawl(url='https://x.org/?a=1#frag'); task:add(title=$w)\n"
        "\n"
        "$r = await [$j, $w]\n"
        "notify.send(\n"
        "    text=\"line\\nbreak \\u4f60\",\n"
        "    tags=[[\"a\"], []],\n"
        ")\n")
    s = script.statements
    assert [st.target for st in s] == ["w", "j", None, "r", None]
    first = s[0].expr
    assert isinstance(first, Call) and first.tool == "weather.get" and not first.is_async
    values = {a.name: a.value for a in first.args}
    assert isinstance(values["city"], Literal_) and values["city"].value == "北京"
    days = values["days"]
    assert isinstance(days, ListExpr)
    assert [i.value for i in days.items if isinstance(i, Literal_)] == [1, 2.5, -3, 1000.0]
    line2 = script.source.splitlines()[1]
    assert [values["raw"], values["none"]] == [Literal_(2, line2.index("true") + 1, True),
                                               Literal_(2, line2.index("null") + 1, None)]
    crawl = s[1].expr
    assert isinstance(crawl, Call) and crawl.is_async and crawl.tool == "web.crawl"
    assert crawl.args[0].value == Literal_(3, 26, "https://x.org/?a=1#frag")  # the opening quote
    add = s[2].expr
    line3 = script.source.splitlines()[2]
    assert isinstance(add, Call) and add.tool == "task:add"
    assert add.args[0].value == Var(3, line3.index("$w") + 1, "w") and add.column == line3.index("task:add") + 1
    awaited = s[3].expr
    assert isinstance(awaited, Await) and awaited.target == ListExpr(5, 12, (Var(5, 13, "j"), Var(5, 17, "w")))
    notify = s[4].expr
    assert isinstance(notify, Call) and notify.args[0].value == Literal_(7, 10, "line\nbreak 你")
    assert (s[4].line, s[4].column) == (6, 1)


def test_empty_and_comment_only_scripts() -> None:
    assert parse("").statements == ()
    assert parse("# nothing\n\n   ;;\n").statements == ()


ERRORS = [
    # source, line, column, message fragment
    ("$x = foo(a=1 = 2)", 1, 14, "expected ',' or ')' in the call to 'foo', found '='"),
    ("foo(1)", 1, 5, "expected an argument name (key=value)"),
    ("foo(a 1)", 1, 7, "expected '=' after the argument name 'a'"),
    ("$x = foo(a=1", 1, 13, "never closed"),
    ("ok()\n$y = bar(name=\"unterminated)", 2, 15, "unterminated string"),
    ("$ = foo()", 1, 1, "a variable name must follow '$'"),
    ("$x = ", 1, 6, "expected a value after '$x ='"),
    ("$x = search query", 1, 13, "expected '(' after the tool name 'search' (strings need quotes)"),
    ("foo(a=1, a=2)", 1, 10, "argument 'a' is given twice"),
    ("$x = [1, 2", 1, 11, "never closed: expected ']'"),
    ("$x = [1 2]", 1, 9, "expected ',' or ']' in the list"),
    ("$x = foo() bar()", 1, 12, "expected the end of the statement"),
    ("$x = async 42", 1, 12, "expected a tool call after 'async'"),
    ("$x = await\n", 1, 11, "expected a $variable"),
    ("foo(a=\"\\q\")", 1, 8, "unknown escape"),
    ("foo(a=12abc)", 1, 9, "after the number 12"),
    ("  foo(a=1) @", 1, 12, "unexpected character '@'"),
    ("foo(a=1)\n\tbar(b=)", 2, 8, "expected a value"),
]


@pytest.mark.parametrize(("source", "line", "column", "fragment"), ERRORS)
def test_syntax_errors_point_at_the_bad_token(source: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(NitSyntaxError) as err:
        parse(source)
    e = err.value
    assert (e.line, e.column) == (line, column), e.render()
    assert fragment in e.message
    rendered = e.render().splitlines()
    assert rendered[0] == f"syntax error at line {line}, column {column}: {e.message}"
    assert rendered[1] == "    " + source.splitlines()[line - 1]
    caret_line = rendered[2]
    assert caret_line.endswith("^") and len(caret_line) - 4 == column  # caret right under the column


def test_caret_keeps_tabs_aligned() -> None:
    with pytest.raises(NitSyntaxError) as err:
        parse("\t\tfoo(a=)")
    assert err.value.render().splitlines()[2] == "    \t\t      ^"


def test_extract_scripts_from_a_reply() -> None:
    reply = ("好的，我来查一下。<nit>$w = weather.get(city=\"Paris\")</nit> and then "
             "<NIT>\n```nit\nnotify(text=$w)\n```\n</NIT>")
    assert extract_scripts(reply) == ['$w = weather.get(city="Paris")', "notify(text=$w)"]
    assert extract_scripts("no script here") == []
