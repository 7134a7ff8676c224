"""Every command example of README.md is checked (issue 17): each shell block and each output
block says, in an HTML comment on the line before it, how it is checked, and that claim is
itself checked here.

The markers (the comment on the nearest non-blank line before the opening fence):

- ``<!-- walkthrough: ... -->``: typed into a terminal, or compared with what the terminal
  printed, by tests/integration/test_readme_walkthrough.py;
- ``<!-- checked-by: tests/PATH.py::test_name -->`` (several: comma-separated): a test that
  really runs the command (or produces the output) shown; the test must exist;
- ``<!-- example: not run: REASON -->``: it cannot run here (a real cluster, the internet,
  root over the machine's firewall...); the reason is required.

Whatever its marker, every ``hookwall ...`` command line of a block of the README, of
deploy/README.md and of docs/*.md must parse with hookwall's own argument parser (the flags
exist, the choices are valid), and every ``make TARGET`` must be a target of the Makefile.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from hookwall.cli.main import build_parser
from tests.support.markdown import Block, fenced_blocks, prose_lines
from tests.support.paths import REPO

README = REPO / "README.md"
# Fenced blocks that hold commands or what commands print; yaml/python/json examples are
# policies and code, checked by the tests of their own sections where they are.
COMMAND_INFO = {"", "sh", "bash", "shell", "console", "text", "json"}
MARKER = re.compile(
    r"^(?:walkthrough: .+|checked-by: (?P<tests>\S.*)|example: not run: (?P<reason>\S.*))$"
)
HOW_TO_MARK = (
    "put one of these on the line before the opening fence:\n"
    "  <!-- checked-by: tests/integration/test_x.py::test_name -->  (a test that runs it)\n"
    "  <!-- example: not run: why it cannot run in the test suite -->\n"
    "  <!-- walkthrough: terminal N -->  (see tests/integration/test_readme_walkthrough.py)"
)


def command_blocks(path: Path = README) -> list[Block]:
    return [block for block in fenced_blocks(path) if block.info in COMMAND_INFO]


def test_every_command_and_output_block_says_how_it_is_checked() -> None:
    unmarked = [
        f"{block.where}: a ```{block.info} block without a marker"
        + (f" (the comment before it is {block.marker!r})" if block.marker else "")
        for block in command_blocks()
        if block.marker is None or not MARKER.match(block.marker)
    ]
    assert not unmarked, "\n".join(unmarked) + "\n" + HOW_TO_MARK


def functions_of(path: Path) -> set[str]:
    """``name`` and ``Class::name`` of every function of a test module."""
    tree = ast.parse(path.read_text())
    names = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names |= {
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    return names


def missing_tests(marker: str) -> list[str]:
    """The test ids of a ``checked-by`` marker that name no test of the repository."""
    match = MARKER.match(marker)
    assert match and match["tests"], marker
    missing: list[str] = []
    for test_id in (item.strip() for item in match["tests"].split(",")):
        path, _, name = test_id.partition("::")
        module = REPO / path
        name = re.sub(r"\[.*\]$", "", name)
        if not (path.startswith("tests/") and module.is_file() and name.startswith("test")):
            missing.append(f"{test_id}: not a test module under tests/ with a test name")
        elif name not in functions_of(module):
            missing.append(f"{test_id}: {path} has no test {name}")
    return missing


def test_every_checked_by_marker_names_a_test_that_exists() -> None:
    wrong = [
        f"{block.where}: {why}"
        for block in fenced_blocks(README)
        if block.marker and block.marker.startswith("checked-by:")
        for why in missing_tests(block.marker)
    ]
    assert not wrong, "\n".join(wrong)


def test_a_marker_naming_a_missing_test_is_caught() -> None:
    here = "tests/unit/docs/test_readme_examples.py"
    assert missing_tests(f"checked-by: {here}::test_the_command_reader") == []
    assert missing_tests(f"checked-by: {here}::test_nothing_like_it")
    assert missing_tests("checked-by: tests/no_such_module.py::test_x")
    assert not MARKER.match("example: not run:")  # a reason is required


# -- the command lines of every block parse -------------------------------------------------

SHELL_INFO = {"", "sh", "bash", "shell", "console"}


def shell_commands(text: str) -> list[str]:
    """The simple commands of a shell block: continuation lines joined, comments dropped,
    split at ``|``, ``&&``, ``||``, ``;`` and ``&``, and the commands inside ``$(...)``."""
    joined = re.sub(r"\\\n\s*", " ", text)
    inner = re.findall(r"\$\(([^()]*)\)", joined)
    joined = re.sub(r"\$\(([^()]*)\)", "1000", joined)  # a number passes for a path too
    joined += "".join(f"\n{command}" for command in inner)
    commands: list[str] = []
    for line in joined.splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            tokens = list(lexer)
        except ValueError:
            continue  # not a shell line (an output line of a console block)
        current: list[str] = []
        redirect = False
        for token in tokens:
            if token and set(token) <= set("<>"):
                redirect = True  # the next word is the file, not an argument
            elif token and set(token) <= set(";&|()$"):
                commands.append(shlex.join(current)) if current else None
                current = []
            elif redirect:
                redirect = False
            else:
                current.append(token.removeprefix("$"))
        if current:
            commands.append(shlex.join(current))
    return commands


def hookwall_argv(command: str) -> list[str] | None:
    """The arguments of a ``hookwall`` command (also ``.venv/bin/hookwall``, after ``sudo``,
    ``kubectl exec ... --`` or ``VAR=value``), or None for any other command."""
    words = shlex.split(command)
    if "--" in words and words[0] in {"kubectl", "docker"}:
        words = words[words.index("--") + 1 :]
    while words and (re.match(r"^\w+=", words[0]) or words[0] in {"sudo", "exec", "env"}):
        words = words[1:]
        if words and words[0].startswith("-u"):
            words = words[1:] if words[0] != "-u" else words[2:]
    if words and Path(words[0]).name == "hookwall":
        return words[1:]
    return None


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([\w.-]+)\s*:(?!=)", text, flags=re.MULTILINE))


def example_files() -> list[Path]:
    return [README, REPO / "deploy" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def command_lines() -> list[tuple[str, str]]:
    """(where, command) for every simple command of every shell block of the docs."""
    return [
        (block.where, command)
        for path in example_files()
        for block in fenced_blocks(path)
        if block.info in SHELL_INFO and not looks_like_output(block)
        for command in shell_commands(block.text)
    ]


def looks_like_output(block: Block) -> bool:
    """An unlabelled block that shows what a command printed (an output, a synopsis): none
    of its lines is a command a person types."""
    typed = block.marker is not None and block.marker.startswith("walkthrough: terminal")
    return not block.info and not typed


def test_every_hookwall_command_of_the_docs_parses() -> None:
    parser = build_parser()
    wrong: list[str] = []
    checked = 0
    for where, command in command_lines():
        argv = hookwall_argv(command)
        if argv is None:
            continue
        checked += 1
        try:
            parser.parse_args(argv)
        except SystemExit:
            wrong.append(f"{where}: `{command}` does not parse with hookwall's parser")
    assert not wrong, "\n".join(wrong)
    assert checked >= 10, "hardly any hookwall command found: the block reader is broken"


def test_every_make_target_of_the_docs_exists() -> None:
    targets = make_targets()
    wrong = [
        f"{where}: `{command}`: no target {words[1]!r} in the Makefile"
        for where, command in command_lines()
        if (words := shlex.split(command))[:1] == ["make"]
        and len(words) > 1
        and not re.match(r"^\w+=", words[1])
        and words[1] not in targets
    ]
    assert not wrong, "\n".join(wrong)
    assert {"run", "test", "lint", "typecheck", "bench"} <= targets


def test_the_command_reader() -> None:
    block = (
        "curl -x x http://h/ -o f   # a comment | not a pipe\n"
        "export A=$(.venv/bin/hookwall keys generate --scheme github) B=2\n"
        ".venv/bin/hookwall redirect-rules --uid 1 \\\n  --format nft | nft -f -\n"
        "sudo -u '#1001' hookwall doctor --json\n"
    )
    commands = shell_commands(block)
    argvs = [argv for command in commands if (argv := hookwall_argv(command)) is not None]
    assert argvs == [
        ["redirect-rules", "--uid", "1", "--format", "nft"],
        ["doctor", "--json"],
        ["keys", "generate", "--scheme", "github"],  # from inside $(...)
    ]
    assert hookwall_argv("kubectl exec deploy/billing -- hookwall doctor") == ["doctor"]


@pytest.mark.parametrize(
    "argv", [["explain", "http://x/", "--no-such-flag"], ["keys", "generate", "--scheme", "md5"]]
)
def test_a_wrong_flag_or_choice_is_caught(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)


# -- the synopsis under "Running it" --------------------------------------------------------


def subcommand_flags() -> dict[str, set[str]]:
    """Every option string of every subcommand (``logs show`` as its own)."""
    parser = build_parser()
    flags: dict[str, set[str]] = {}

    def walk(prefix: str, sub: object) -> None:
        import argparse

        assert isinstance(sub, argparse.ArgumentParser)
        flags[prefix] = {s for action in sub._actions for s in action.option_strings}
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(f"{prefix} {name}".strip(), child)

    walk("", parser)
    return flags


def unknown_flags(line: str, flags: dict[str, set[str]]) -> tuple[str, list[str]]:
    """The subcommand a ``hookwall ...`` line names, and the flags it shows that the
    subcommand does not have (placeholders such as ``URL`` or ``[--json]`` are fine)."""
    line = line.split(" | ")[0]  # what is piped into another program is not hookwall's
    words = line.split()
    command = " ".join(w for w in words[1:3] if re.fullmatch(r"[a-z][a-z-]*", w))
    while command not in flags:
        command = command.rsplit(" ", 1)[0] if " " in command else ""
    found = re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", line)
    return command, [flag for flag in found if flag not in flags[command]]


def synopsis() -> Block:
    (block,) = [block for block in fenced_blocks(README) if block.text.startswith("hookwall run [")]
    return block


def synopsis_lines() -> list[str]:
    text = re.sub(r"\n\s+(?=\[|--)", " ", synopsis().text)
    return [line for line in text.splitlines() if line.startswith("hookwall ")]


def test_the_synopsis_names_only_flags_that_exist() -> None:
    flags = subcommand_flags()
    wrong = [
        f"{synopsis().where}: hookwall {command}: no flag {flag}"
        for line in synopsis_lines()
        for command, unknown in [unknown_flags(line, flags)]
        for flag in unknown
    ]
    assert not wrong, "\n".join(wrong)


def runnable_commands() -> set[str]:
    """Every subcommand a person can run (``logs`` and ``logs show``; not ``keys`` alone,
    which needs one of its own subcommands)."""
    import argparse

    found: set[str] = set()

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if prefix and not any(group.required for group in groups):
            found.add(prefix)
        for group in groups:
            for name, child in group.choices.items():
                walk(f"{prefix} {name}".strip(), child)

    walk("", build_parser())
    return found


def test_the_synopsis_has_every_command() -> None:
    flags = subcommand_flags()
    shown = {unknown_flags(line, flags)[0] for line in synopsis_lines()}
    missing = sorted(runnable_commands() - shown)
    assert not missing, "\n".join(
        f'{synopsis().where}: the synopsis under "Running it" has no line for '
        f"`hookwall {name}`: add `hookwall {name} [its flags]` there"
        for name in missing
    )


def test_the_flag_reader() -> None:
    flags = subcommand_flags()
    assert unknown_flags("hookwall explain URL --sender NAME [--json]", flags) == ("explain", [])
    assert unknown_flags("hookwall logs show ID --jsn", flags) == ("logs show", ["--jsn"])
    line = "hookwall redirect-rules --remove --format iptables | iptables-restore --noflush"
    assert unknown_flags(line, flags) == ("redirect-rules", [])
    assert "keys" not in runnable_commands() and {"logs", "logs show"} <= runnable_commands()


def test_every_inline_hookwall_command_names_real_flags() -> None:
    """``hookwall explain URL --sender NAME`` in a sentence: the flags it names exist."""
    flags = subcommand_flags()
    wrong: list[str] = []
    for path in example_files():
        for number, line in prose_lines(path):
            for span in re.findall(r"`([^`]+)`", line):
                words = span.split()
                if not words or words[0] not in {"hookwall", ".venv/bin/hookwall"}:
                    continue
                command, unknown = unknown_flags(" ".join(["hookwall", *words[1:]]), flags)
                wrong += [
                    f"{path.relative_to(REPO)}:{number}: `{span}`: hookwall {command} has no "
                    f"flag {flag}"
                    for flag in unknown
                ]
    assert not wrong, "\n".join(wrong)
