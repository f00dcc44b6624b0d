"""Draw one trace read back from Jaeger's API as a PNG for the docs (README, "Observability").

    .venv/bin/python scripts/trace_screenshot.py [ANSWER_JSON] [PNG]

ANSWER_JSON is Jaeger's `GET /api/traces/{id}` answer that tests/gateway/test_tracing_jaeger.py
saves (default: tests/artifacts/jaeger-trace.json, one real tool call through gateway → adapter →
upstream); PNG defaults to docs/trace.png. The page (tests/support/trace_timeline.py) is a timeline
of our own, not Jaeger's UI, which a module build of Jaeger does not include. Headless Chromium
(scripts/setup-browser.sh) takes the picture through Playwright.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.trace_timeline import page  # noqa: E402 - after the path set-up above

CHROMIUM = os.environ.get("MCP_TEST_CHROMIUM", "/usr/bin/chromium")
CAPTION = (
    "One 2026-07-28 tools/call through mcp-gateway → mcp-adapter → an MCP upstream, as Jaeger 1.62 stored it "
    "(read from its /api/traces API; drawn by scripts/trace_screenshot.py, not Jaeger's UI)."
)


async def shoot(answer: dict[str, object], png: Path) -> None:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as folder:
        html = Path(folder) / "trace.html"
        html.write_text(page(answer, CAPTION), encoding="utf-8")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            view = await browser.new_page(viewport={"width": 1280, "height": 400}, device_scale_factor=1)
            await view.goto(html.as_uri())
            await view.screenshot(path=str(png), full_page=True)
            await browser.close()


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests/artifacts/jaeger-trace.json"
    png = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs/trace.png"
    if not source.exists():
        raise SystemExit(f"{source} is missing: run tests/gateway/test_tracing_jaeger.py first (it saves the answer)")
    asyncio.run(shoot(json.loads(source.read_text()), png))
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
