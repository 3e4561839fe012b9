"""Griffe extension: reads the Keras flavour of Google docstrings.

The library writes its docstrings as Keras does (see STYLE.md):

- `Example:` followed by a blank line, then doctest (`>>>`) lines or a fenced
  code block at the indentation of the text. Griffe's Google parser only takes
  a title directly followed by an indented block as a section, so this example
  would be rendered as nested block quotes. The extension indents it under an
  `Examples:` section, which griffe renders as code.
- `Call arguments:` with `name: description` items. Griffe has no such section
  and would join the items into one paragraph of an admonition; the extension
  turns them into a Markdown list inside that admonition.

It also resolves a name clash of static analysis: a package that re-exports a
function named like the module that defines it (`keras_imsvd.losses` exports
`joint_cross_entropy` from `losses/joint_cross_entropy.py`) holds the function
at run time, but griffe keeps the module under that name, and the function
would be missing from the API reference. The exported name is made to point to
the function.

Only what is handed to the renderer changes; the source is not touched.
"""

import re

import griffe

_TITLE = re.compile(r"^(?P<title>[A-Z][A-Za-z ]*):\s*$")
_ITEM = re.compile(r"^    (?P<name>\*{0,2}\w+): ?(?P<text>.*)$")


def _is_section_start(lines, index):
    """A title at column 0 followed directly by an indented line."""
    if not _TITLE.match(lines[index]):
        return False
    following = lines[index + 1] if index + 1 < len(lines) else ""
    return following.startswith((" ", "\t")) and bool(following.strip())


def _examples(lines, start):
    """The lines of a blank-line-separated example block, and where it ends."""
    end = start
    while end < len(lines) and not _is_section_start(lines, end):
        end += 1
    block = lines[start:end]
    while block and not block[-1].strip():
        block.pop()
    # A blank line before the next section, which griffe needs to see its title.
    tail = [""] if end < len(lines) else []
    indented = [f"    {line}" if line.strip() else "" for line in block]
    return ["Examples:", *indented, *tail], end


def _call_arguments(lines, start):
    """`    name: text` items (continued at 8 spaces) as a Markdown list."""
    out = ["Call arguments:"]
    end = start
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        line = lines[end]
        item = _ITEM.match(line)
        if item:
            out.append(f"    - `{item.group('name')}`: {item.group('text')}")
        elif line.strip():
            out.append(f"      {line.strip()}")
        else:
            out.append("")
        end += 1
    return out, end


def rewrite(text):
    """Returns `text` with Keras-style examples and call arguments rewritten."""
    lines = text.split("\n")
    out = []
    index = 0
    while index < len(lines):
        line = lines[index]
        title = _TITLE.match(line)
        following = lines[index + 1] if index + 1 < len(lines) else None
        if (
            title
            and title.group("title") in ("Example", "Examples")
            and following is not None
            and not following.strip()
        ):
            block, index = _examples(lines, index + 2)
            out.extend(block)
            continue
        if title and title.group("title") == "Call arguments":
            block, index = _call_arguments(lines, index + 1)
            out.extend(block)
            continue
        out.append(line)
        index += 1
    return "\n".join(out)


def _modules(module):
    yield module
    for submodule in list(module.modules.values()):
        if not submodule.is_alias:
            yield from _modules(submodule)


class KerasDocstrings(griffe.Extension):
    """Rewrites Keras-style sections of every docstring before parsing."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)

    def on_package(self, *, pkg, **kwargs):
        for module in list(_modules(pkg)):
            for name in list(module.exports or ()):
                member = module.members.get(str(name))
                if (
                    member is not None
                    and not member.is_alias
                    and member.is_module
                    and str(name) in member.members
                ):
                    target = member.members[str(name)]
                    module.set_member(
                        str(name), griffe.Alias(str(name), target, parent=module)
                    )
