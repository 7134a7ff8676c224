"""``hookwall completion bash|zsh|fish``: each script is generated from the parser, loads in
its shell, and completes what the parser has (sub-commands, flags, choices, file names).

bash is always there; zsh and fish are tried when installed (skipped otherwise).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hookwall.cli import completion
from hookwall.cli.main import build_parser, main


def generated(shell: str) -> str:
    return completion.script(build_parser(), shell)


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub-)command of ``parser`` with its words: (("logs", "show"), parser), ..."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, (*path, name))
    return found


def visible_flags(parser: argparse.ArgumentParser) -> list[str]:
    return [
        flag
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for flag in action.option_strings
    ]


def hidden_flags(parser: argparse.ArgumentParser) -> list[str]:
    return [
        flag
        for action in parser._actions
        if action.help == argparse.SUPPRESS
        for flag in action.option_strings
    ]


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_the_command_prints_the_script(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    assert out == generated(shell)
    assert "hookwall" in out and out.endswith("\n")


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["completion", "powershell"])
    assert exited.value.code == 2
    assert "invalid choice: 'powershell'" in capsys.readouterr().err


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_every_command_and_its_flags_are_in_the_script(shell: str) -> None:
    text = generated(shell)
    for path, parser in commands(build_parser()):
        for word in path:
            assert word in text, (shell, path)
        for flag in visible_flags(parser):
            if shell == "fish":  # complete ... -l help / -s f
                flag = f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"
            assert flag in text, (shell, path, flag)


def test_hidden_options_are_not_offered() -> None:
    """--worker and --worker-listen are the supervisor's, never typed by a person."""
    run = dict(commands(build_parser()))[("run",)]
    assert set(hidden_flags(run)) >= {"--worker", "--worker-listen"}
    for shell in completion.SHELLS:
        words = re.findall(r"[\w-]+", generated(shell))
        for flag in ("--worker", "--worker-listen"):
            assert flag not in words, (shell, flag)
        if shell == "fish":
            assert "worker" not in words and "worker-listen" not in words  # complete -l NAME
        assert "--workers" in words or "workers" in words, shell  # (the one that is offered)


def action(path: tuple[str, ...], flag: str) -> argparse.Action:
    parser = dict(commands(build_parser()))[path]
    found = [a for a in parser._actions if flag in a.option_strings or a.dest == flag]
    assert len(found) == 1, (path, flag)
    return found[0]


@pytest.mark.parametrize(
    ("path", "flag", "kind"),
    [
        (("run",), "--policy", "file"),
        (("check",), "policy", "file"),  # FILE_OR_DIR: file completion offers directories
        (("run",), "--ca", "file"),
        (("run",), "--log-file", "file"),
        (("run",), "--data-dir", "dir"),
        (("logs",), "--file", "file"),
        (("logs", "show"), "--data-dir", "dir"),
        (("send-test",), "--body", "file"),
        (("replay",), "--cacert", "file"),
        (("redirect-rules",), "--cgroup", None),  # a cgroup, not a file on this machine
        (("run",), "--mode", None),  # choices
        (("logs",), "--host", None),  # a glob
        (("explain",), "url", None),
    ],
)
def test_which_arguments_complete_file_names(
    path: tuple[str, ...], flag: str, kind: str | None
) -> None:
    assert completion.path_kind(action(path, flag)) == kind


BASH_COMPLETE = r"""
source "$1"; shift
complete -p hookwall
COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
_shtab_hookwall hookwall "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_complete(tmp_path: Path, *words: str) -> list[str]:
    """What bash offers for ``words`` (the last one being completed), as a user's TAB would
    get it: the script sourced, then its completion function called with COMP_WORDS set."""
    script = tmp_path / "hookwall.bash"
    script.write_text(generated("bash"))
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_COMPLETE, "bash", str(script), *words],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=tmp_path,
    )
    registered, *offered = result.stdout.splitlines()
    assert registered == "complete -o bashdefault -F _shtab_hookwall hookwall"
    return offered


def test_bash_script_parses(tmp_path: Path) -> None:
    script = tmp_path / "hookwall.bash"
    script.write_text(generated("bash"))
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


def test_bash_completes_commands_flags_choices_and_files(tmp_path: Path) -> None:
    assert bash_complete(tmp_path, "hookwall", "lo") == ["logs"]
    assert bash_complete(tmp_path, "hookwall", "comp") == ["completion"]
    assert bash_complete(tmp_path, "hookwall", "completion", "") == list(completion.SHELLS)
    assert bash_complete(tmp_path, "hookwall", "keys", "") == ["generate"]
    assert bash_complete(tmp_path, "hookwall", "run", "--mode", "") == ["regular", "transparent"]
    assert "--follow" in bash_complete(tmp_path, "hookwall", "logs", "--")
    assert "--host" not in bash_complete(tmp_path, "hookwall", "logs", "show", "--")
    (tmp_path / "policies").mkdir()
    (tmp_path / "prod.yaml").write_text("version: 1\n")
    assert set(bash_complete(tmp_path, "hookwall", "check", "p")) == {"policies", "prod.yaml"}
    assert bash_complete(tmp_path, "hookwall", "run", "--data-dir", "p") == ["policies"]


def need(shell: str) -> str:
    found = shutil.which(shell)
    if found is None:
        pytest.skip(f"{shell} is not installed")
    return found


def test_zsh_script_parses_and_registers(tmp_path: Path) -> None:
    """Both ways of installing it: a file _hookwall on $fpath (what `completion --help`
    says), and eval in .zshrc."""
    zsh = need("zsh")
    functions = tmp_path / "zfunc"
    functions.mkdir()
    script = functions / "_hookwall"
    script.write_text(generated("zsh"))
    subprocess.run([zsh, "-n", str(script)], check=True, timeout=30)
    loaded = subprocess.run(
        [zsh, "-f", "-c", 'fpath=("$1" $fpath); autoload -U compinit && '
         'compinit -u -d "$1/.zcompdump" && print -r -- $_comps[hookwall] && '
         'eval "$(<"$1/_hookwall")" && print -r -- $_comps[hookwall]', "zsh", str(functions)],
        capture_output=True, text=True, timeout=30, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert loaded.stdout.split() == ["_hookwall", "_shtab_hookwall"]
    assert loaded.stderr == ""


def fish_complete(fish: str, script: Path, line: str, cwd: Path) -> list[str]:
    """What fish offers for ``line`` (``complete -C``, fish's own completion engine)."""
    result = subprocess.run(
        [fish, "--no-config", "-c", 'source $argv[1]; complete -C "$argv[2]"', str(script), line],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=cwd,
    )
    assert result.stderr == ""
    return [candidate.split("\t", 1)[0] for candidate in result.stdout.splitlines()]


def test_fish_script_parses_and_completes(tmp_path: Path) -> None:
    fish = need("fish")
    script = tmp_path / "hookwall.fish"
    script.write_text(generated("fish"))
    subprocess.run([fish, "--no-execute", str(script)], check=True, timeout=30)
    assert fish_complete(fish, script, "hookwall lo", tmp_path) == ["logs"]
    assert fish_complete(fish, script, "hookwall keys ", tmp_path) == ["generate"]
    assert fish_complete(fish, script, "hookwall completion ", tmp_path) == list(completion.SHELLS)
    assert fish_complete(fish, script, "hookwall run --mode ", tmp_path) == [
        "regular",
        "transparent",
    ]
    assert "--follow" in fish_complete(fish, script, "hookwall logs --", tmp_path)
    # an option's value is not taken for a sub-command: still run's options
    assert "--workers" in fish_complete(fish, script, "hookwall run --sender logs --", tmp_path)
    (tmp_path / "prod.yaml").write_text("version: 1\n")
    assert "prod.yaml" in fish_complete(fish, script, "hookwall check p", tmp_path)
