#!/usr/bin/env python3
"""Plain requests and requests with never-issued credentials, at a fixed rate, for bench/soak.sh.

Each of --connections threads keeps one keep-alive connection (reopened when the proxy closes it) and sends
its share of --rate requests per second for --duration seconds. A request is, in turn:
plain GET, OAuth header with a random token and consumer key, Bearer token, `?oauth_token=` in the query,
a random JSESSIONID cookie, and a form POST with a random `oauth_token`. Prints one summary line: requests by
status class and transport errors.
"""
import argparse
import collections
import http.client
import secrets
import threading
import time


def request_of(i):
    token = secrets.token_urlsafe(24)
    kind = i % 6
    if kind == 0:
        return "GET", "/cqweb/health", {}, None
    if kind == 1:
        auth = (f'OAuth oauth_consumer_key="{secrets.token_hex(8)}", oauth_token="{token}", '
                'oauth_signature_method="HMAC-SHA1", oauth_signature="x", oauth_nonce="n", oauth_timestamp="1"')
        return "GET", "/cqweb/oslc/repo/resource", {"Authorization": auth}, None
    if kind == 2:
        return "GET", "/cqweb/oslc/repo/resource", {"Authorization": f"Bearer {token}"}, None
    if kind == 3:
        return "GET", f"/cqweb/oauth-authorize?oauth_token={token}", {}, None
    if kind == 4:
        return "GET", "/cqweb/restapi", {"Cookie": f"JSESSIONID={token}"}, None
    body = f"oauth_token={token}&oauth_verifier={secrets.token_hex(4)}".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return "POST", "/cqweb/oauth-access-token", headers, body


def worker(port, rate, deadline, counts, lock):
    conn = None
    interval = 1.0 / rate
    next_at = time.monotonic()
    i = 0
    local = collections.Counter()
    while time.monotonic() < deadline:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        method, path, headers, body = request_of(i)
        i += 1
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            local[f"{resp.status // 100}xx"] += 1
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            local[f"error {type(e).__name__}"] += 1
            conn.close()
            conn = None
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()
    if conn is not None:
        conn.close()
    with lock:
        counts.update(local)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--connections", type=int, default=4)
    a = p.parse_args()
    deadline = time.monotonic() + a.duration
    counts = collections.Counter()
    lock = threading.Lock()
    threads = [threading.Thread(target=worker, args=(a.port, a.rate / a.connections, deadline, counts, lock))
               for _ in range(a.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(counts.values())
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    print(f"{total} requests ({detail})")


if __name__ == "__main__":
    main()
