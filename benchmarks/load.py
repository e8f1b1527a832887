"""Load test for a running `rasid serve`: N concurrent clients for a bounded time and request count.

    python benchmarks/load.py --concurrency 8 --duration 30 [--url http://127.0.0.1:8000] [--route classify]
    python benchmarks/load.py --scenario fairness --duration 20 [--singles 8 --article-paragraphs 300]
    python benchmarks/load.py --scenario overload --duration 20 [--factor 4]

Default scenario: prints throughput, p50/p95/p99 latency and the count of each status.
fairness: `--singles` clients post single paragraphs back to back, first alone, then beside one client posting
  long articles (`--article-paragraphs` lines each) to /v1/analyze; prints the single-paragraph p50/p99 of both
  runs, so one can see whether an article holds the short requests up.
overload: measures capacity with `--concurrency` clients sending 8-text batches, then sends batches open-loop
  (at a fixed rate, whatever the answers) at `--factor` times that capacity; prints the count of each status
  (200 / 429 / 504): an overloaded server should refuse at once (429) what it cannot answer in time, not accept
  it and time out (504).
Loopback servers only: this is a benchmark of your own machine, not a tool to point at someone else's.
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
        return "/v1/analyze", {
            "text": "\n\n".join(rng.sample(texts, min(4, len(texts)))),
            "target": rng.choice(TARGETS),
        }
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


def article(rng: random.Random, texts: list[str], paragraphs: int) -> str:
    """A long article: `paragraphs` news lines (numbered, so no two are the same line and none is furniture)."""
    return "\n".join(f"{rng.choice(texts)} ({k + 1})." for k in range(paragraphs))


async def timed_posts(client, stop_at: float, make, latencies: list, statuses: Counter) -> None:
    """Post `make()` bodies back to back until `stop_at`, recording the 200s' latency and every status."""
    while time.perf_counter() < stop_at:
        path, body = make()
        started = time.perf_counter()
        try:
            response = await client.post(path, json=body)
            statuses[str(response.status_code)] += 1
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
        except httpx.HTTPError as error:
            statuses[f"error:{type(error).__name__}"] += 1


def summary(latencies: list[float], statuses: Counter) -> str:
    return "p50 {:.1f} ms  p99 {:.1f} ms  ({} answered; statuses {})".format(
        1000 * percentile(latencies, 50),
        1000 * percentile(latencies, 99),
        len(latencies),
        ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())),
    )


async def fairness(client, args, texts: list[str]) -> None:
    rng = random.Random(0)
    long_article = article(rng, texts, args.article_paragraphs)
    print(
        f"fairness: {args.singles} clients posting single paragraphs to /v1/classify, {args.duration:.0f} s per run; "
        f"the article client posts {args.article_paragraphs}-paragraph articles ({len(long_article):,} characters) "
        "to /v1/analyze back to back"
    )
    for with_article in (False, True):
        single_latencies, single_statuses = [], Counter()
        article_latencies, article_statuses = [], Counter()
        stop_at = time.perf_counter() + args.duration
        singles = [
            timed_posts(
                client,
                stop_at,
                lambda r=random.Random(k): ("/v1/classify", {"text": r.choice(texts)}),  # noqa: B008  (one RNG per client, bound on purpose)
                single_latencies,
                single_statuses,
            )
            for k in range(args.singles)
        ]
        articles = (
            [
                timed_posts(
                    client,
                    stop_at,
                    lambda: ("/v1/analyze", {"text": long_article}),
                    article_latencies,
                    article_statuses,
                )
            ]
            if with_article
            else []
        )
        await asyncio.gather(*singles, *articles)
        name = "with the article client   " if with_article else "without the article client"
        print(f"  {name}  single paragraphs: {summary(single_latencies, single_statuses)}")
        if with_article:
            print(f"  {' ' * len(name)}  articles: {summary(article_latencies, article_statuses)}")


async def overload(client, args, texts: list[str]) -> None:
    rng = random.Random(1)

    def batch():
        return "/v1/classify/batch", {"inputs": [{"text": rng.choice(texts)} for _ in range(8)]}

    latencies, statuses = [], Counter()
    started = time.perf_counter()
    await asyncio.gather(
        *(
            timed_posts(client, started + args.capacity_seconds, batch, latencies, statuses)
            for _ in range(args.concurrency)
        )
    )
    capacity = len(latencies) / (time.perf_counter() - started)
    rate = args.rate or args.factor * capacity
    print(
        f"overload: capacity {capacity:.1f} batch requests/s (8 texts each; {args.concurrency} clients, "
        f"{args.capacity_seconds:.0f} s, {summary(latencies, statuses)})"
    )
    print(f"  sending {rate:.1f} requests/s open-loop ({rate / capacity:.1f}x this capacity) for {args.duration:.0f} s")
    latencies, statuses, retry_after, pending = [], Counter(), Counter(), []

    async def one():
        path, body = batch()
        sent = time.perf_counter()
        try:
            response = await client.post(path, json=body)
        except httpx.HTTPError as error:
            statuses[f"error:{type(error).__name__}"] += 1
            return
        statuses[str(response.status_code)] += 1
        if response.status_code == 200:
            latencies.append(time.perf_counter() - sent)
        elif response.status_code == 429:
            retry_after[response.headers.get("retry-after", "none")] += 1

    started = time.perf_counter()
    for k in range(int(rate * args.duration)):
        await asyncio.sleep(max(0.0, started + k / rate - time.perf_counter()))
        pending.append(asyncio.create_task(one()))
    await asyncio.gather(*pending)
    print(
        "  status  "
        + "  ".join(f"{s}: {statuses.get(s, 0)}" for s in ("200", "429", "504"))
        + "".join(f"  {s}: {n}" for s, n in sorted(statuses.items()) if s not in ("200", "429", "504"))
    )
    print(
        f"  answered (200) p50 {1000 * percentile(latencies, 50):.0f} ms  p99 {1000 * percentile(latencies, 99):.0f} ms;"
        f" Retry-After of the 429s (s: count): " + ", ".join(f"{s}: {n}" for s, n in sorted(retry_after.items()))
    )


async def main_async(args) -> int:
    texts = SENTENCES
    if args.texts:
        texts = [line.strip() for line in Path(args.texts).read_text(encoding="utf-8").splitlines() if line.strip()]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    # the open-loop overload run must never wait for a free connection: that would make it closed-loop
    connections = 4096 if args.scenario == "overload" else args.concurrency + args.singles + 1
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=args.url, headers=headers, limits=limits, timeout=args.timeout) as client:
        ready = await client.get("/readyz")
        if ready.status_code != 200:
            print(f"load.py: {args.url} is not ready ({ready.status_code}: {ready.text})", file=sys.stderr)
            return 1
        if args.scenario == "fairness":
            await fairness(client, args, texts)
            return 0
        if args.scenario == "overload":
            await overload(client, args, texts)
            return 0
        latencies, statuses, budget = [], Counter(), {"left": args.max_requests}
        started = time.perf_counter()
        stop_at = started + args.duration
        await asyncio.gather(
            *(
                client_loop(client, args, texts, k, stop_at, budget, latencies, statuses)
                for k in range(args.concurrency)
            )
        )
        elapsed = time.perf_counter() - started
    total = sum(statuses.values())
    per_request = {"classify": 1, "batch": 8, "analyze": 4}[args.route]
    print(f"route /{args.route}  concurrency {args.concurrency}  {elapsed:.1f} s  {total} requests")
    print(
        f"throughput  {total / elapsed:.1f} req/s  ({statuses.get('200', 0) * per_request / elapsed:.1f} texts/s answered)"
    )
    print(
        "latency ms (200s)  p50 {:.1f}  p95 {:.1f}  p99 {:.1f}".format(
            *(1000 * percentile(latencies, q) for q in (50, 95, 99))
        )
    )
    print("status  " + "  ".join(f"{status}: {count}" for status, count in sorted(statuses.items())))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="a loopback rasid server")
    parser.add_argument("--concurrency", type=int, default=8, help="clients sending requests back to back")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to run (a bound)")
    parser.add_argument("--max-requests", type=int, default=10_000, help="stop after this many requests (a bound)")
    parser.add_argument("--route", choices=["classify", "batch", "analyze"], default="classify")
    parser.add_argument(
        "--scenario",
        choices=["route", "fairness", "overload"],
        default="route",
        help="route: --concurrency clients on --route; fairness and overload: see above",
    )
    parser.add_argument("--singles", type=int, default=8, help="fairness: single-paragraph clients")
    parser.add_argument("--article-paragraphs", type=int, default=300, help="fairness: lines per long article")
    parser.add_argument("--factor", type=float, default=4.0, help="overload: request rate as a multiple of capacity")
    parser.add_argument("--capacity-seconds", type=float, default=5.0, help="overload: length of the capacity run")
    parser.add_argument(
        "--rate",
        type=float,
        help="overload: requests/s to send instead of --factor x capacity (the same offered load for two servers)",
    )
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
