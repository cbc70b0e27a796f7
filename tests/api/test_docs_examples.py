"""docs/api.md's curl examples, run as written with real curl against a live server.

The document's ```sh blocks are read in order, as a reader would type them into one shell:

- a `curl …` command (continued over lines by `\\` or an open quote) runs with bash, with the
  variables set so far, and must answer the status its `# → NNN` line shows;
- a `NAME=value  # …` line after a command sets NAME from that command's answer: from the JSON
  field its comment names in double quotes (`# its "id"`), or from the ETag header when the
  comment says so; the value written in the document is only an illustration;
- `API=…` is the one line not taken from the document: it points at the live server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crm.roles import Role
from tests.factories import CustomerFactory, UserFactory

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
CURL = shutil.which("curl")
BASH = shutil.which("bash")

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(CURL is None or BASH is None, reason="needs curl and bash"),
]

ASSIGNMENT = re.compile(r"^([A-Z_]+)=(\S+)\s*(?:#\s*(.*))?$")
EXPECTED_STATUS = re.compile(r"^#\s*→\s*(\d{3})\b")


@dataclass
class Command:
    text: str
    line: int
    status: int | None = None
    # The rest of the `# → NNN …` line: a problem `"type"` or a `header Name: value` it shows
    # is checked too.
    shown: str = ""
    # Variables this command's answer sets: (name, the document's comment).
    sets: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Steps:
    commands: list[Command]
    api_assignments: int


def _shell_blocks(markdown: str):
    block, start = None, 0
    for number, line in enumerate(markdown.splitlines(), 1):
        if block is None and line.strip() == "```sh":
            block, start = [], number + 1
        elif block is not None and line.strip() == "```":
            yield start, block
            block = None
        elif block is not None:
            block.append(line)


def _complete(text: str) -> bool:
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text)
    except ValueError:  # an open quote: the command goes on
        return False
    return True


def read_steps(markdown: str) -> Steps:
    commands: list[Command] = []
    api_assignments = 0
    for start, lines in _shell_blocks(markdown):
        index = 0
        while index < len(lines):
            line = lines[index].strip()
            number = start + index
            index += 1
            if line.startswith("curl "):
                text = line
                while not _complete(text):
                    text += "\n" + lines[index]
                    index += 1
                commands.append(Command(text=text, line=number))
            elif EXPECTED_STATUS.match(line):
                assert commands and commands[-1].status is None, f"docs/api.md:{number}: a status without a command"
                commands[-1].status = int(EXPECTED_STATUS.match(line).group(1))
                commands[-1].shown = line
            elif ASSIGNMENT.match(line):
                name, _value, comment = ASSIGNMENT.match(line).groups()
                if name == "API":
                    api_assignments += 1
                    continue
                assert commands, f"docs/api.md:{number}: {name} is set before any command"
                commands[-1].sets.append((name, comment or ""))
            elif line and not line.startswith("#"):
                pytest.fail(f"docs/api.md:{number}: not a curl command, a status or a variable: {line!r}")
    return Steps(commands=commands, api_assignments=api_assignments)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    def json(self):
        return json.loads(self.body)


def run_curl(command: Command, env: dict[str, str], tmp_path: Path) -> Answer:
    assert "|" not in command.text.replace("'|'", ""), "keep commands to one curl: the test adds its own output options"
    body, headers = tmp_path / "body", tmp_path / "headers"
    options = f"--silent --show-error --output {body} --dump-header {headers} --write-out '%{{http_code}}'"
    result = subprocess.run(
        [BASH, "-c", f"set -u\n{command.text} {options}"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"docs/api.md:{command.line}: curl failed: {result.stderr}"
    header_lines = headers.read_text().splitlines()
    parsed = {}
    for line in header_lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            parsed[name.strip().lower()] = value.strip()
    text = body.read_text()
    if "\r\n\r\n" in text and text.startswith("HTTP/"):  # `curl -i` writes the headers into the body too
        text = text.split("\r\n\r\n", 1)[1]
    return Answer(status=int(result.stdout), headers=parsed, body=text)


def value_from(answer: Answer, name: str, comment: str, line: int) -> str:
    if "etag header" in comment.lower():
        return answer.headers["etag"]
    named = re.search(r'"([a-z_]+)"', comment)
    assert named, f'docs/api.md:{line}: say which field {name} comes from, e.g. # its "id"'
    value = answer.json()[named.group(1)]
    assert value is not None, f"docs/api.md:{line}: the answer has no {named.group(1)} for {name}"
    return str(value)


def test_the_document_has_the_common_tasks():
    steps = read_steps(DOC.read_text())
    paths = {(re.search(r"-X (\w+)", c.text) or [None, "GET"])[1] + " " + c.text for c in steps.commands}

    assert steps.api_assignments == 1
    for method, fragment in [
        ("POST", "/auth/token/"),
        ("POST", "/customers/"),
        ("POST", "/invoices/"),
        ("POST", "/issue/"),
        ("POST", "/payments/"),
        ("POST", "/allocations/"),
        ("GET", "/aging/"),
        ("PATCH", "If-Match"),
        ("POST", "Idempotency-Key"),
    ]:
        assert any(p.startswith(method) and fragment in p for p in paths), f"no {method} example with {fragment}"
    assert all(command.status for command in steps.commands), "every curl shows the status it answers"


@pytest.mark.postgres
def test_every_curl_example_answers_as_documented(live_server, tmp_path):
    UserFactory(username="finance.admin", password="correct horse battery staple", role=Role.FINANCE_ADMIN)
    # Another customer, so that a page of one customer has a next page.
    CustomerFactory(owner=UserFactory(username="rep.docs", role=Role.SALES), display_name="Contoso")
    steps = read_steps(DOC.read_text())
    env = {"PATH": os.environ["PATH"], "API": f"{live_server.url}/api/v1"}

    for command in steps.commands:
        answer = run_curl(command, env, tmp_path)

        assert answer.status == command.status, (
            f"docs/api.md:{command.line}: {command.text}\nanswered {answer.status}, documented {command.status}: "
            f"{answer.body[:500]}"
        )
        problem = re.search(r'"type": "(urn:concord:problem:[a-z-]+)"', command.shown)
        if problem:
            assert answer.json()["type"] == problem.group(1), f"docs/api.md:{command.line}"
        header = re.search(r"header ([A-Za-z-]+): (\S+)", command.shown)
        if header:
            name, value = header.group(1).lower(), header.group(2)
            assert name in answer.headers, f"docs/api.md:{command.line}: no {name} header"
            if "…" not in value:
                assert answer.headers[name] == value, f"docs/api.md:{command.line}"
        for name, comment in command.sets:
            env[name] = value_from(answer, name, comment, command.line)
