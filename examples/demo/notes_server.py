"""Demo stdio MCP server for `make run`: a tiny notebook kept in memory.

Run by the adapter as a child process over stdio; it needs no network.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("demo-notes", instructions="Keep short notes during a session.")
_notes: list[str] = []


@server.tool()
def add_note(text: str) -> str:
    """Remember a note; returns how many notes are kept."""
    _notes.append(text)
    return f"saved note {len(_notes)}"


@server.tool()
def list_notes() -> list[str]:
    """Every note saved so far, oldest first."""
    return list(_notes)


@server.tool()
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


@server.resource("notes://all")
def all_notes() -> str:
    """All notes as one text, one per line."""
    return "\n".join(_notes)


@server.prompt()
def summarize_notes() -> str:
    """Ask the model to summarize the saved notes."""
    return "Summarize these notes in three bullet points:\n" + "\n".join(_notes)


if __name__ == "__main__":
    server.run("stdio")
