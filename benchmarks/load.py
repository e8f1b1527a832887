"""Load test for a running `rasid serve`: N concurrent clients for a bounded time and request count.

    python benchmarks/load.py --concurrency 8 --duration 30 [--url http://127.0.0.1:8000] [--route classify]

Prints throughput, p50/p95/p99 latency and the count of each status. Loopback servers only: this is a
benchmark of your own machine, not a tool to point at someone else's.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx

# Arabic news sentences of assorted lengths (written for rasid; no dataset text).
SENTENCES = [
    "فاز المنتخب الوطني على منافسه بثلاثة أهداف في المباراة النهائية للبطولة",
    "ارتفعت أسعار النفط في الأسواق العالمية بعد قرار خفض الإنتاج",
    "حذرت وزارة الصحة من انتشار الإنفلونزا الموسمية ودعت إلى التطعيم",
    "التقى رئيس الوزراء وزير الخارجية لبحث العلاقات الثنائية بين البلدين",
    "أعلن البنك المركزي رفع سعر الفائدة لمواجهة التضخم المتزايد، وقال محافظ البنك في مؤتمر صحفي إن القرار "
    "يهدف إلى حماية القدرة الشرائية للمواطنين وإن البنك سيواصل مراقبة الأسعار خلال الأشهر المقبلة",
    "أكدت مصادر ميدانية أن الجيش بسط سيطرته الكاملة على المدينة صباح اليوم",
]
TARGETS = ["لقاح كورونا", "الجيش سيطر على المدينة", "ارتفاع أسعار الخبز"]


def loopback_only(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"load.py: refusing {url!r}: only loopback servers (127.0.0.1, ::1, localhost) are allowed.")
    return url.rstrip("/")


def make_body(route: str, texts: list[str], rng: random.Random) -> tuple[str, dict]:
    def one():
        item = {"text": rng.choice(texts)}
        if rng.random() < 0.5:
            item["target"] = rng.choice(TARGETS)
        return item
    if route == "batch":
        return "/v1/classify/batch", {"inputs": [one() for _ in range(8)]}
    if route == "analyze":
        return "/v1/analyze", {"text": "\n\n".join(rng.sample(texts, min(4, len(texts)))), "target": rng.choice(TARGETS)}
    return "/v1/classify", one()


async def client_loop(client, args, texts, seed, stop_at, budget, latencies, statuses):
    rng = random.Random(seed)
    while time.perf_counter() < stop_at and budget["left"] > 0:
        budget["left"] -= 1  # single-threaded event loop: no lock needed
        path, body = make_body(args.route, texts, rng)
        started = time.perf_counter()
        try:
            response = await client.post(path, json=body)
            statuses[str(response.status_code)] += 1
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
        except httpx.HTTPError as error:
            statuses[f"error:{type(error).__name__}"] += 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


async def main_async(args) -> int:
    texts = SENTENCES
    if args.texts:
        texts = [line.strip() for line in Path(args.texts).read_text(encoding="utf-8").splitlines() if line.strip()]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.url, headers=headers, limits=limits, timeout=args.timeout) as client:
        ready = await client.get("/readyz")
        if ready.status_code != 200:
            print(f"load.py: {args.url} is not ready ({ready.status_code}: {ready.text})", file=sys.stderr)
            return 1
        latencies, statuses, budget = [], Counter(), {"left": args.max_requests}
        started = time.perf_counter()
        stop_at = started + args.duration
        await asyncio.gather(*(client_loop(client, args, texts, k, stop_at, budget, latencies, statuses)
                               for k in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    total = sum(statuses.values())
    per_request = {"classify": 1, "batch": 8, "analyze": 4}[args.route]
    print(f"route /{args.route}  concurrency {args.concurrency}  {elapsed:.1f} s  {total} requests")
    print(f"throughput  {total / elapsed:.1f} req/s  ({statuses.get('200', 0) * per_request / elapsed:.1f} texts/s answered)")
    print("latency ms (200s)  p50 {:.1f}  p95 {:.1f}  p99 {:.1f}".format(
        *(1000 * percentile(latencies, q) for q in (50, 95, 99))))
    print("status  " + "  ".join(f"{status}: {count}" for status, count in sorted(statuses.items())))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="a loopback rasid server")
    parser.add_argument("--concurrency", type=int, default=8, help="clients sending requests back to back")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to run (a bound)")
    parser.add_argument("--max-requests", type=int, default=10_000, help="stop after this many requests (a bound)")
    parser.add_argument("--route", choices=["classify", "batch", "analyze"], default="classify")
    parser.add_argument("--texts", help="a UTF-8 file, one text per line (default: built-in sentences)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request client timeout, seconds")
    parser.add_argument("--api-key", default=os.environ.get("RASID_API_KEY"), help="default: $RASID_API_KEY")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0 or args.max_requests < 1:
        parser.error("--concurrency, --duration and --max-requests must be positive")
    args.url = loopback_only(args.url)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
