"""Where keys sit in a rules file, so that a mistake can be reported with its line.

Theory of operation
-------------------
``tomllib`` parses TOML into plain dicts and forgets positions, yet issue 6 asks that a rules
file with a mistake be "rejected at load with the line at fault". This module scans the text
once, independently of tomllib, and records the line of every key the rules loader may blame:

* top-level keys and table headers (``version = 1``, ``[[rule]]``, ``[oops]``);
* the keys of each ``[[rule]]`` table, in file order (rule *i* of ``data["rule"]`` is the
  *i*-th ``[[rule]]`` header: TOML keeps array-of-tables order);
* for the ``actions = [ {...}, {...} ]`` array of a rule, the line of each inline table and
  of each key inside it (action *j* is the *j*-th table of the array).

The scan masks string contents and comments first (same length, newlines kept), so that a
``#``, ``[`` or ``=`` inside a string or a comment cannot confuse it, then walks the masked
text tracking ``[``/``{`` nesting. It only runs on text tomllib has already accepted, so it
need not diagnose syntax; where it cannot find a key it falls back to the enclosing table's
line, which is still the right neighbourhood.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Block:
    """Lines of one table: its header, its keys, and its ``actions`` entries."""

    line: int
    keys: dict[str, int] = field(default_factory=dict)
    actions: list[dict[str, int]] = field(default_factory=list)
    action_lines: list[int] = field(default_factory=list)

    def key(self, name: str) -> int:
        """Line of ``name`` in this table, else the table's own line."""
        return self.keys.get(name, self.line)

    def action_key(self, index: int, name: str | None = None) -> int:
        """Line of key ``name`` of action ``index`` (or of the action itself)."""
        if index >= len(self.actions):
            return self.key("actions")
        if name is not None and name in self.actions[index]:
            return self.actions[index][name]
        return self.action_lines[index]


@dataclass(slots=True)
class Layout:
    """Line positions of a whole rules file; see the module docstring."""

    top: Block
    rules: list[Block]

    def rule(self, index: int) -> Block:
        return self.rules[index] if index < len(self.rules) else self.top


def mask(text: str) -> str:
    """Blank out string contents and comments, keeping length, quotes and newlines."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
            continue
        if ch in "\"'":
            triple = text.startswith(ch * 3, i)
            quote = ch * 3 if triple else ch
            i += len(quote)
            while i < n and not text.startswith(quote, i):
                if ch == '"' and text[i] == "\\":
                    out[i] = " "
                    i += 1
                    if i < n and text[i] != "\n":
                        out[i] = " "
                    i += 1
                    continue
                if text[i] == "\n" and not triple:
                    break  # unterminated; tomllib already refused such text
                if text[i] != "\n":
                    out[i] = " "
                i += 1
            i += len(quote)
            continue
        i += 1
    return "".join(out)


def _key_before(text: str, start: int, end: int) -> str:
    return text[start:end].strip().strip("\"'").strip()


def scan(text: str) -> Layout:
    """Return the :class:`Layout` of ``text`` (TOML that tomllib accepted)."""
    masked = mask(text)
    top = Block(1)
    rules: list[Block] = []
    block = top
    stack: list[str] = []
    line = 1
    line_start = 0
    key_start = 0  # where the key being read began (line start, or after "{" / ",")
    value_key = ""  # the depth-0 key whose value is being read
    i, n = 0, len(masked)
    while i < n:
        ch = masked[i]
        if ch == "\n":
            line += 1
            line_start = key_start = i + 1
            i += 1
            continue
        if not stack and ch == "[" and not masked[line_start:i].strip():
            # A table header: "[name]" or "[[name]]" at the start of a line.
            end = masked.find("\n", i)
            end = n if end < 0 else end
            name = text[i:end].split("#", 1)[0].strip().strip("[]").strip().strip("\"'")
            if masked.startswith("[[", i) and name == "rule":
                block = Block(line)
                rules.append(block)
            else:
                top.keys.setdefault(name.split(".", 1)[0], line)
                block = Block(line)  # keys of other tables are not blamed individually
            i = end
            continue
        if ch == "=":
            name = _key_before(text, key_start, i)
            if not stack:
                block.keys.setdefault(name, line)
                value_key = name
            elif stack == ["[", "{"] and value_key == "actions" and block.actions:
                block.actions[-1].setdefault(name, line)
        elif ch in "[{":
            if ch == "{" and stack == ["["] and value_key == "actions":
                block.actions.append({})
                block.action_lines.append(line)
            stack.append(ch)
            key_start = i + 1
        elif ch in "]}":
            if stack:
                stack.pop()
        elif ch == "," and stack and stack[-1] == "{":
            key_start = i + 1
        i += 1
    return Layout(top, rules)
