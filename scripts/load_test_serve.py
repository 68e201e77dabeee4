"""A bounded load test of `mh-lightning serve` on loopback: N concurrent clients for S seconds.

    python scripts/load_test_serve.py --checkpoint runs/tiny_cpu/checkpoints/last.ckpt --clients 16 --seconds 60

Starts the server (a subprocess on a free 127.0.0.1 port), warms it up, then each client sends
chat requests back to back (streamed and whole, multi-turn, some crisis messages) until the time
is up; in-flight requests finish, then the server is stopped. Prints one JSON object: status
codes, p50/p95 latency, the server's peak RSS and its RSS before and after, and exits 1 when a
5xx was seen or the RSS after is more than 10% above the RSS before. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
CONVERSATIONS = [
    [{"role": "user", "content": "I have been feeling anxious about work lately."}],
    [{"role": "user", "content": "I can't sleep."}, {"role": "assistant", "content": "That sounds hard."},
     {"role": "user", "content": "What can I try tonight?"}],
    [{"role": "user", "content": "I want to kill myself"}],
    [{"role": "user", "content": "How do I support a friend who is grieving?"}],
]


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_request(client: httpx.Client, url: str, index: int, max_tokens: int) -> httpx.Response:
    body = {"messages": CONVERSATIONS[index % len(CONVERSATIONS)], "max_tokens": max_tokens,
            "stream": index % 2 == 0}
    if body["stream"]:
        with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            for _ in response.iter_lines():
                pass
            return response
    return client.post(f"{url}/v1/chat/completions", json=body)


def wait_idle(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health", timeout=5).json()
        if health["generating"] == 0 and health["waiting"] == 0:
            return
        time.sleep(0.2)


def run(args: argparse.Namespace) -> dict:
    from mh_lightning.serve.process import ServerStartError, free_port, stop, wait_healthy

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([sys.executable, "-m", "mh_lightning.serve", "--checkpoint", str(args.checkpoint),
                               "--port", str(port), "--max_new_tokens", str(args.max_tokens),
                               "--max_queue", str(args.max_queue)], env=env, stdout=log, stderr=log)
    try:
        try:
            wait_healthy(url, 300, server)
        except ServerStartError as err:
            log.seek(0)
            raise SystemExit(f"{err}: {log.read().decode(errors='replace')[-2000:]}") from None
        with httpx.Client(timeout=args.request_timeout) as client:  # warm up: first-call allocations
            for i in range(len(CONVERSATIONS)):
                one_request(client, url, i, args.max_tokens)
        before = memory_kib(server.pid)["VmRSS"]
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds

        def client_loop(number: int) -> None:
            with httpx.Client(timeout=args.request_timeout) as client:
                index = number
                while time.monotonic() < stop_at:
                    began = time.perf_counter()
                    try:
                        response = one_request(client, url, index, args.max_tokens)
                        status = response.status_code
                    except httpx.HTTPError:
                        status = 0  # no answer at all: counted as a server error
                    with lock:
                        statuses[status] += 1
                        if status == 200:  # latency of answered requests; a 429 comes back at once
                            latencies.append(time.perf_counter() - began)
                    if status == 429:  # a polite client waits as told (capped to keep the test short)
                        time.sleep(min(float(response.headers.get("retry-after", 1)), 2.0))
                    index += 1

        threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_idle(url, 60)
        after = memory_kib(server.pid)
    finally:
        stop(server)
        log.close()
    return {
        "clients": args.clients, "seconds": args.seconds, "max_tokens": args.max_tokens,
        "requests": sum(statuses.values()), "status_codes": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors": sum(v for k, v in statuses.items() if k >= 500 or k == 0),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(after["VmRSS"] / 1024, 1),
        "rss_peak_mib": round(after["VmHWM"] / 1024, 1), "rss_after_over_before": round(after["VmRSS"] / before, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a .ckpt or an exported folder")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long new requests are sent")
    parser.add_argument("--max_tokens", type=int, default=24, help="answer length asked by each request")
    parser.add_argument("--max_queue", type=int, default=16, help="the server's --max_queue")
    parser.add_argument("--request_timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if not args.checkpoint.exists():
        parser.error(f"--checkpoint {args.checkpoint}: not found")
    result = run(args)
    print(json.dumps(result, indent=2))
    return 1 if result["server_errors"] or result["rss_after_over_before"] > 1.10 else 0


if __name__ == "__main__":
    sys.exit(main())
