"""The sunlight-readability check the page tests rely on (browser_helpers.check_contrast)
catches low-contrast text and passes the page's own high-contrast pairs."""

from __future__ import annotations

import pytest

from tests.browser_helpers import ARGS, CHROMIUM, check_contrast, needs_chromium, playwright_api

pytestmark = needs_chromium

PAGE = """<!doctype html><body style="background:#ffffff">
<p id="ok" style="color:#111111">plain text</p>
<div style="background:#0b4fb3"><span style="color:#ffffff">white on blue</span></div>
%s
</body>"""


@pytest.mark.parametrize(
    "bad, caught",
    [
        ('<p style="color:#aaaaaa">grey on white</p>', True),
        ('<div style="background:#ffd400"><span style="color:#ffffff">white on yellow</span></div>', True),
        ('<p style="color:rgba(0,0,0,0.3)">faint black</p>', True),
        ('<p style="color:#595959">dark grey on white (7:1)</p>', False),
    ],
)
async def test_contrast_check(bad: str, caught: bool) -> None:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            await page.set_content(PAGE % bad)
            if caught:
                with pytest.raises(AssertionError, match="contrast"):
                    await check_contrast(page, "sample")
            else:
                await check_contrast(page, "sample")
        finally:
            await browser.close()
