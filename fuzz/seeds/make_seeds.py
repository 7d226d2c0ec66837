#!/usr/bin/env python3
"""Writes the hand-made seed inputs of each fuzz target into fuzz/corpus/<target>/seed-*.

The fuzzer grows each corpus from these; `cargo test` replays everything under fuzz/corpus. Table-reader
seeds are written under the fuzz key (tokenroute::fuzzing::fuzz_key: 32 bytes of 7).
Run from the repository root: python3 fuzz/seeds/make_seeds.py
"""
import hashlib
import hmac
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(__file__), "..", "corpus")
KEY = bytes([7] * 32)
NOW = 1_800_000_000


def fp(value: bytes) -> bytes:
    return hmac.new(KEY, value, hashlib.sha256).digest()[:16]


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# config
repo = os.path.join(os.path.dirname(__file__), "..", "..")
with open(os.path.join(repo, "config.toml"), "rb") as f:
    write("config", "shipped", f.read())
write("config", "minimal", '[[upstream.node]]\nname = "a"\nurl = "http://127.0.0.1:9001"\n')
write("config", "two-nodes-strategy", '''[[listener]]
address = "127.0.0.1:8080"
proxy_protocol = true
[forwarding]
trusted_proxies = ["10.0.0.0/8", "::1"]
[routing]
presets = ["oslc", "oauth2"]
[[upstream.node]]
name = "lbcq_1"
url = "http://127.0.0.1:9001"
weight = 3
clone_id = "abc"
[[upstream.node]]
name = "lbcq_2"
url = "https://127.0.0.1:9002"
[affinity]
max_entries = 1000
[affinity.ttl]
access_token = "1h"
[health]
interval = "5s"
''')
write("config", "bad-values", '[[listener]]\naddress = "nowhere"\n[[upstream.node]]\nname = ""\nurl = "x"\nweight = 257\n')

# authorization
write("authorization", "oauth", 'OAuth realm="x", oauth_consumer_key="ck", oauth_token="t%20k", '
      'oauth_signature_method="HMAC-SHA1", oauth_signature="sig%3D", oauth_nonce="n", oauth_timestamp="1"')
write("authorization", "bearer", "Bearer mF_9.B5f-4.1JqM")
write("authorization", "basic", "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW")
write("authorization", "basic-colon", "Basic Y2xpZW50JTNBaWQ6c2VjcmV0")
write("authorization", "oauth-dup", 'OAuth oauth_token="a", oauth_token="b"')

# request
write("request", "access-token",
      "POST /cqweb/oauth-access-token?oauth_token=qt\nAuthorization: OAuth oauth_consumer_key=\"ck\", "
      "oauth_token=\"rt\", oauth_verifier=\"v\"\nContent-Type: application/x-www-form-urlencoded\n\n"
      "oauth_token=rt&oauth_verifier=v")
write("request", "oauth2-token",
      "POST /oauth2/token\nAuthorization: Basic Y2xpZW50OnNlY3JldA==\n"
      "Content-Type: application/x-www-form-urlencoded\n\ngrant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA"
      "&client_id=client")
write("request", "cookie", "GET /cqweb/restapi\nCookie: JSESSIONID=0000abc:clone1; other=1\n\n")
write("request", "device", "POST /device/verify\nContent-Type: application/x-www-form-urlencoded\n\nuser_code=WDJB-MJHT")
write("request", "client-config", "GET /register/s6BhdRkqt3\nAuthorization: Bearer reg-token\n\n")

# response: role byte, status byte ((status-100)/2), flags, then head and body
def resp(role, status, flags, head, body=""):
    return bytes([role, (status - 100) // 2, flags]) + ("HTTP/1.1\n" + head + "\n\n" + body).encode()

write("response", "register", resp(0, 200, 0, "Content-Type: application/json", '{"key":"ck-123"}'))
write("response", "approve", resp(1, 200, 2, "Content-Type: text/html", "ok"))
write("response", "request-token", resp(2, 200, 0, "Content-Type: application/x-www-form-urlencoded",
                                        "oauth_token=rt&oauth_token_secret=s&oauth_callback_confirmed=true"))
write("response", "authorize-redirect", resp(3, 302, 1, "Location: https://client/cb?oauth_token=rt&oauth_verifier=v"))
write("response", "oauth2-token", resp(6, 200, 0, "Content-Type: application/json",
                                       '{"access_token":"at","refresh_token":"rt","id_token":"a.b.c","token_type":"Bearer"}'))
write("response", "oauth2-code", resp(5, 302, 1, "Location: https://client/cb?code=c1&state=s\nSet-Cookie: JSESSIONID=abc:clone1; Path=/"))
write("response", "registration", resp(7, 200, 0, "Content-Type: application/json",
                                       '{"client_id":"c","registration_access_token":"r","registration_client_uri":"https://as/register/c"}'))
write("response", "device", resp(11, 200, 0, "Content-Type: application/json",
                                 '{"device_code":"d","user_code":"WDJB-MJHT","verification_uri":"https://as/device"}'))

# percent
write("percent", "form", "a=1&b=%20x+y&c=%E2%82%AC&d")
write("percent", "bad-escape", "%zz%4")
write("percent", "utf8", "caf\u00e9 \u20ac/~")

# snapshot (JSON lines)
check = fp(b"\0tokenroute key check").hex()
header = json.dumps({"format": "tokenroute-affinity", "version": 1, "saved_at": NOW - 10,
                     "key_check": check, "nodes": ["node1", "node2", "node3"]}, separators=(",", ":"))
lines = [header]
for i, kind in enumerate(["consumer_key", "access_token", "code", "session_cookie"]):
    lines.append(json.dumps({"fp": fp(b"cred%d" % i).hex(), "kind": kind, "owners": 1 + i,
                             "expires_at": NOW + 3600 - i * 7200}, separators=(",", ":")))
write("snapshot", "four-entries", "\n".join(lines) + "\n")
write("snapshot", "other-key", header.replace(check, "0" * 32) + "\n")

# journal: byte 0 = mode (0 raw after header, 1 re-framed [tag,len,payload])
def frame(tag, payload):
    body = bytes([tag]) + struct.pack("<H", len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))

names = bytes([3]) + b"".join(bytes([i]) + struct.pack("<H", 5) + b"node%d" % (i + 1) for i in range(3))
put = fp(b"tok") + bytes([4]) + struct.pack("<Q", 0b11) + struct.pack("<I", NOW + 600)
raw = frame(5, names) + frame(1, put) + frame(3, bytes([1]) + struct.pack("<H", 1 << 1)) + frame(2, fp(b"tok")) + frame(4, bytes([2]))
write("journal", "raw-records", bytes([0]) + raw)
write("journal", "raw-torn", bytes([0]) + raw[:-5])
write("journal", "reframed", bytes([1]) + bytes([5, len(names)]) + names + bytes([1, len(put)]) + put + bytes([4, 1, 2]))

# proxy_protocol
write("proxy_protocol", "v1-tcp4", "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n")
write("proxy_protocol", "v1-unknown", "PROXY UNKNOWN\r\n")
sig = b"\r\n\r\n\x00\r\nQUIT\n"
v2 = sig + bytes([0x21, 0x11]) + struct.pack(">H", 12) + bytes([192, 0, 2, 1, 198, 51, 100, 1]) + struct.pack(">HH", 56324, 443)
write("proxy_protocol", "v2-tcp4", v2)
v2_6 = sig + bytes([0x21, 0x21]) + struct.pack(">H", 36) + bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack(">HH", 1, 2)
write("proxy_protocol", "v2-tcp6", v2_6)
write("proxy_protocol", "v2-local", sig + bytes([0x20, 0x00, 0, 0]))


# node_response: a selector byte (bit 0: HEAD instead of GET; bits 1-3: piece size - 1), then a node's answer
def node(selector, answer):
    return bytes([selector]) + answer.encode()


write("node_response", "length", node(0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"))
write("node_response", "chunked-trailers", node(2, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                              "5;ext=1\r\nhello\r\n1 \r\n!\r\n0\r\nX-Sum: 9\r\n\r\n"))
write("node_response", "gzip-then-close", node(4, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw to the end"))
write("node_response", "informational", node(6, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                                          "HTTP/1.1 201 Created\r\ncontent-length: 1\r\n\r\nx"))
write("node_response", "head-with-length", node(1, "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"))
write("node_response", "no-content", node(8, "HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nabcd"))
write("node_response", "http10-close", node(10, "HTTP/1.0 200 Fine\r\nConnection: keep-alive\r\n\r\nbody"))
write("node_response", "length-list", node(12, "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\ncontent-length: 3\r\n\r\nabc"))
write("node_response", "length-disagrees", node(0, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 4\r\n\r\nabcd"))
write("node_response", "te-in-http10", node(0, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
write("node_response", "bad-chunk", node(14, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"))
write("node_response", "short-body", node(0, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"))
write("node_response", "switching", node(0, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"))
write("node_response", "obs-fold", node(0, "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n"))
