"""A minimal Language Server Protocol client over stdio: enough to open one document in a
language server (yaml-language-server) and read the diagnostics it publishes for it."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

type Message = dict[str, Any]


class LanguageServer:
    """One server process; ``diagnostics(path)`` opens the file and waits for its report."""

    def __init__(self, command: list[str], settings: dict[str, Any], timeout: float = 30) -> None:
        self.settings = settings
        self.timeout = timeout
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._next_id = 0
        self._request("initialize", {
            "processId": None,
            "rootUri": None,
            "capabilities": {
                "workspace": {"configuration": True},
                "textDocument": {"publishDiagnostics": {}, "hover": {}},
            },
        })  # fmt: skip
        self._notify("initialized", {})
        self._notify("workspace/didChangeConfiguration", {"settings": settings})

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait(timeout=10)

    def __enter__(self) -> LanguageServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def diagnostics(self, path: Path) -> list[Message]:
        uri = path.resolve().as_uri()
        document = {"uri": uri, "languageId": "yaml", "version": 1, "text": path.read_text()}
        self._notify("textDocument/didOpen", {"textDocument": document})
        found = self._until(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri
            )
        )
        diagnostics: list[Message] = found["params"]["diagnostics"]
        return diagnostics

    def hover(self, path: Path, line: int, character: int) -> str:
        uri = path.resolve().as_uri()
        reply = self._request(
            "textDocument/hover",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        )
        result = reply.get("result") or {}
        contents = result.get("contents", "")
        return contents.get("value", "") if isinstance(contents, dict) else str(contents)

    # -- the wire ---------------------------------------------------------------------------

    def _send(self, message: Message) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        stdin = self._stdin()
        stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        stdin.flush()

    def _stdin(self) -> IO[bytes]:
        assert self._proc.stdin is not None
        return self._proc.stdin

    def _notify(self, method: str, params: Message) -> None:
        self._send({"method": method, "params": params})

    def _request(self, method: str, params: Message) -> Message:
        self._next_id += 1
        ident = self._next_id
        self._send({"id": ident, "method": method, "params": params})
        return self._until(lambda m: m.get("id") == ident and "method" not in m)

    def _until(self, wanted: Any) -> Message:
        """Read messages, answering the server's own requests, until ``wanted(message)``;
        the server is killed after ``timeout`` seconds without it (the read then fails)."""
        timer = threading.Timer(self.timeout, self._proc.kill)
        timer.start()
        try:
            while True:
                message = self._read()
                if wanted(message):
                    return message
                if "id" in message and "method" in message:
                    self._answer(message)
        finally:
            timer.cancel()

    def _answer(self, request: Message) -> None:
        if request["method"] == "workspace/configuration":
            items = request["params"]["items"]
            result: Any = [self.settings.get(i.get("section", ""), None) for i in items]
        else:
            result = None
        self._send({"id": request["id"], "result": result})

    def _read(self) -> Message:
        stdout = self._proc.stdout
        assert stdout is not None
        length = None
        while True:
            line = stdout.readline()
            if not line:
                raise EOFError("the language server closed its output")
            line = line.strip()
            if not line:
                break
            name, _, value = line.decode("ascii").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if length is None:
            raise ValueError("a message without Content-Length")
        message: Message = json.loads(stdout.read(length))
        return message
