"""Takes the screenshot of the analysts' page in docs/page.png, from a running `rasid serve`:

    rasid serve --model models/rasid-default &
    .venv/bin/python -m tests.page_screenshot --url http://127.0.0.1:8000 --out docs/page.png

It pastes ARTICLE (or --article FILE) with TARGET (or --target), analyzes it, opens the skipped lines and saves
the whole page as a small palette PNG. With RASID_API_KEY set, it enters that key. Needs playwright and Debian's Chromium, as tests/test_page_browser.py
does, which also uses ARTICLE and TARGET.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Written for rasid's tests and docs: a menu, three news paragraphs, a "follow us" line and a copyright line.
FURNITURE = "تابعونا عبر فيسبوك"
ARTICLE = f"""الرئيسية | محليات | اقتصاد | رياضة | ثقافة
أعلنت الحكومة اليوم برنامجًا جديدًا لدعم المزارعين المتضررين من موجة الجفاف التي ضربت المنطقة هذا العام.
وقال وزير الزراعة في مؤتمر صحفي إن البرنامج يشمل قروضًا ميسّرة وإعفاءً من رسوم المياه لمدة عامين.
{FURNITURE}
ورحّب اتحاد المزارعين بالقرار، لكنه طالب بتوسيع الدعم ليشمل صغار مربّي المواشي في القرى النائية.
جميع الحقوق محفوظة
"""
TARGET = "برنامج دعم المزارعين"


def small_png(png: bytes, width: int) -> bytes:
    """Scaled to `width` pixels and reduced to a 256-colour palette: a page screenshot shrinks several-fold."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    out = io.BytesIO()
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


def take(
    url: str, out: Path, article: str = ARTICLE, target: str = TARGET, key: str | None = None, width: int = 1000
) -> Path:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="ar")
        page.goto(url.rstrip("/") + "/")
        if key:
            page.fill("#api-key", key)
            page.click("#key-form button")
        page.wait_for_selector("#model-info .task-info")
        page.fill("#article", article)
        page.fill("#target", target)
        page.click("#analyze")
        page.wait_for_selector("#paragraphs > li")
        page.click("#skipped-summary")
        png = page.screenshot(full_page=True)
        browser.close()
    out.write_bytes(small_png(png, width))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=Path("docs/page.png"))
    parser.add_argument("--article", type=Path, help="a UTF-8 text file (default: the article in this module)")
    parser.add_argument("--target", default=TARGET)
    args = parser.parse_args(argv)
    article = args.article.read_text(encoding="utf-8") if args.article else ARTICLE
    # The key from the environment, as `rasid serve` takes it: a flag would show in `ps`.
    path = take(args.url, args.out, article, args.target, os.environ.get("RASID_API_KEY"))
    print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
