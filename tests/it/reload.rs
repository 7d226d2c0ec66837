//! Hot reload: valid configs apply without losing a request or a learned credential; invalid ones are
//! refused while the old config keeps serving; new certificates reach new connections.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use tokenroute::affinity::unix_now;
use tokenroute::oauth::CredentialKind;
use tokenroute::server::reload::{reload_from_file, Attempt, FileWatch};

fn write(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenroute-reload-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_fail_no_request_and_keep_learned_entries() {
    let a = Origin::start("a").await;
    let b = Origin::start("b").await;
    let dir = temp_dir("load");
    let path = dir.join("config.toml");
    let base = config_text(&[("a", a.url()), ("b", b.url())], "");
    let proxy = spawn_proxy(&base).await;
    // Pin the listener's port in the file so reloads do not look like listener changes.
    let base = base.replacen("127.0.0.1:0", &proxy.addr.to_string(), 1);
    write(&path, &base);
    let fp = proxy.proxy.fingerprint("learned-before-reloads");
    let id = proxy.proxy.current().pool.by_name("a").unwrap().id;
    proxy.proxy.table().learn(
        fp,
        CredentialKind::ConsumerKey,
        id,
        Duration::from_secs(600),
        unix_now(),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (stop, failures, done, url) =
            (stop.clone(), failures.clone(), done.clone(), proxy.url());
        load.spawn(async move {
            let client = http1_client();
            // Bounded: stops when the reloads are done, and after 160 000 requests at most.
            for _ in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match client.get(format!("{url}/x").parse().unwrap()).await {
                    Ok(r) if r.status() == 200 => {
                        let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    for i in 0..50 {
        // Alternate weights and policies, and add/remove a third node name pointing at `b`.
        let mut text = base.replace(
            "name = \"b\"",
            &format!("name = \"b\"\nweight = {}", 1 + i % 3),
        );
        text.push_str(if i % 2 == 0 {
            "[upstream]\npolicy = \"least_requests\"\n"
        } else {
            ""
        });
        if i % 5 == 0 {
            text.push_str(&format!(
                "[[upstream.node]]\nname = \"extra\"\nurl = \"{}\"\n",
                b.url()
            ));
        }
        write(&path, &text);
        reload_from_file(&proxy.proxy, &path).unwrap();
        let target = done.load(Ordering::SeqCst) + 8;
        eventually(
            "requests flow between reloads",
            Duration::from_secs(5),
            async || done.load(Ordering::SeqCst) >= target,
        )
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    while load.join_next().await.is_some() {}
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "of {} requests",
        done.load(Ordering::SeqCst)
    );
    assert_eq!(proxy.proxy.reload_status().version, 51);
    let entry = proxy
        .proxy
        .table()
        .lookup(fp, unix_now())
        .expect("learned entry survived");
    assert!(entry.owners().contains(id));
    assert_eq!(
        proxy.proxy.current().pool.by_name("a").unwrap().id,
        id,
        "node ids are stable"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn invalid_edits_are_refused_and_the_old_config_keeps_serving() {
    let a = Origin::start("a").await;
    let dir = temp_dir("invalid");
    let path = dir.join("config.toml");
    let good = config_text(&[("a", a.url())], "");
    let proxy = spawn_proxy(&good).await;
    let bad_edits = [
        "this is not toml [".to_string(),
        format!("{good}\n[upstream]\npolcy = \"round_robin\"\n"),
        good.replace(&a.url(), "ftp://nowhere"),
        format!("{good}\n[limits]\nheader_read_timeout = \"soon\"\n"),
        format!("{good}\n[limits]\nmax_header_bytes = \"1KiB\"\n"),
        format!("{good}\n[upstream]\npolicy = \"random\"\n"),
        format!("{good}\n[[upstream.node]]\nname = \"a\"\nurl = \"{}\"\n", a.url()),
        format!("{good}\n[health]\nrise = 0\n"),
        format!("{good}\n[routing]\npresets = [\"saml\"]\n"),
        format!("{good}\n[refresh]\n[[refresh.exchange]]\npath = \"/login\"\nbody = \"password=${{UNSET_VARIABLE_FOR_TEST}}\"\n"),
    ];
    for (i, text) in bad_edits.iter().enumerate() {
        write(&path, text);
        assert!(
            reload_from_file(&proxy.proxy, &path).is_err(),
            "edit {i} was accepted"
        );
        let (status, served_by, _) = get(&format!("{}/x", proxy.url())).await;
        assert_eq!(
            (status.as_u16(), served_by.as_str()),
            (200, "a"),
            "edit {i}"
        );
    }
    let status = proxy.proxy.reload_status();
    assert_eq!((status.version, status.failed), (1, 10));
    assert!(status
        .last_error
        .unwrap()
        .contains("UNSET_VARIABLE_FOR_TEST"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_replaced_certificate_reaches_new_connections_and_old_ones_continue() {
    let first = TestPki::new(&[("site", &["site.test"])]);
    let second = TestPki::new(&[("site", &["site.test"])]);
    let origin = Origin::start("n1").await;
    let dir = temp_dir("certs");
    std::fs::copy(first.dir.join("site.pem"), dir.join("site.pem")).unwrap();
    std::fs::copy(first.dir.join("site.key"), dir.join("site.key")).unwrap();
    let text = format!(
        "[[listener]]\nname = \"tls\"\naddress = \"127.0.0.1:0\"\n[[listener.tls.certificate]]\ncert = \"site.pem\"\nkey = \"site.key\"\n[[upstream.node]]\nname = \"n1\"\nurl = \"{}\"\n[admin]\naddress = \"127.0.0.1:0\"\n",
        origin.url()
    );
    let proxy = spawn_proxy_in(&text, &dir).await;
    let text = text.replacen("127.0.0.1:0", &proxy.addr.to_string(), 1);
    let path = dir.join("config.toml");
    write(&path, &text);

    async fn connect(
        pki: &TestPki,
        addr: std::net::SocketAddr,
    ) -> Result<
        hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
        std::io::Error,
    > {
        let connector = tokio_rustls::TlsConnector::from(pki.client_config(&[b"http/1.1"]));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from("site.test").unwrap();
        let stream = connector.connect(name, tcp).await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        Ok(sender)
    }
    async fn send(
        sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    ) -> u16 {
        let request = http::Request::get("/x")
            .header("host", "site.test")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        sender
            .send_request(request)
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    let mut old_connection = connect(&first, proxy.addr).await.unwrap();
    assert_eq!(send(&mut old_connection).await, 200);
    std::fs::copy(second.dir.join("site.pem"), dir.join("site.pem")).unwrap();
    std::fs::copy(second.dir.join("site.key"), dir.join("site.key")).unwrap();
    reload_from_file(&proxy.proxy, &path).unwrap();
    // New connections get the new certificate: a client trusting only the new CA connects...
    let mut new_connection = connect(&second, proxy.addr).await.unwrap();
    assert_eq!(send(&mut new_connection).await, 200);
    // ...and one trusting only the old CA no longer can.
    assert!(connect(&first, proxy.addr).await.is_err());
    // The connection opened before the reload goes on.
    assert_eq!(send(&mut old_connection).await, 200);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_moved_listener_is_rebound_and_the_old_address_closed() {
    let a = Origin::start("a").await;
    let dir = temp_dir("rebind");
    let path = dir.join("config.toml");
    let proxy = spawn_proxy(&config_text(&[("a", a.url())], "")).await;
    let old = proxy.addr;
    let new = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    write(
        &path,
        &config_text(&[("a", a.url())], "").replacen("127.0.0.1:0", &new.to_string(), 1),
    );
    let report = reload_from_file(&proxy.proxy, &path).unwrap();
    assert!(report.listeners_changed);
    let url = format!("http://{new}/x");
    eventually(
        "the new address serves",
        Duration::from_secs(5),
        async || tokio::net::TcpStream::connect(new).await.is_ok(),
    )
    .await;
    assert_eq!(get(&url).await.1, "a");
    eventually(
        "the old address is closed",
        Duration::from_secs(5),
        async || tokio::net::TcpStream::connect(old).await.is_err(),
    )
    .await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_node_that_takes_a_removed_nodes_id_starts_its_metrics_from_zero() {
    let a = Origin::start("a").await;
    let b = Origin::start("b").await;
    let d = Origin::start("d").await;
    let dir = temp_dir("reset");
    let path = dir.join("config.toml");
    let text = config_text(&[("a", a.url()), ("b", b.url())], "");
    write(&path, &text);
    let proxy = spawn_proxy_reloading_from(&text, &path).await;
    for _ in 0..6 {
        get(&format!("{}/x", proxy.url())).await;
    }
    let b_id = proxy.proxy.current().pool.by_name("b").unwrap().id;
    let metrics = async || {
        let (_, _, body) = get(&format!("http://{}/metrics", proxy.admin.unwrap())).await;
        body
    };
    let served = |body: &str, node: &str| -> u64 {
        body.lines()
            .filter(|l| {
                l.starts_with("tokenroute_requests_total{")
                    && l.contains(&format!("node=\"{node}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(served(&metrics().await, "b"), 3);

    write(&path, &config_text(&[("a", a.url()), ("d", d.url())], ""));
    reload_from_file(&proxy.proxy, &path).unwrap();
    assert_eq!(
        proxy.proxy.current().pool.by_name("d").unwrap().id,
        b_id,
        "d reuses b's id"
    );
    let body = metrics().await;
    assert_eq!(served(&body, "d"), 0, "d inherited b's counters:\n{body}");
    get(&format!("{}/x", proxy.url())).await;
    get(&format!("{}/x", proxy.url())).await;
    assert_eq!(served(&metrics().await, "d"), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_removed_node_takes_the_consumer_keys_it_alone_owned_out_of_the_table() {
    let a = Origin::start("a").await;
    let b = Origin::start("b").await;
    let dir = temp_dir("removed-keys");
    let path = dir.join("config.toml");
    let text = config_text(&[("a", a.url()), ("b", b.url())], "");
    write(&path, &text);
    let proxy = spawn_proxy_reloading_from(&text, &path).await;
    let (a_id, b_id) = {
        let generation = proxy.proxy.current();
        let id = |name: &str| generation.pool.by_name(name).unwrap().id;
        (id("a"), id("b"))
    };
    let table = proxy.proxy.table();
    let learn = |value: &str, kind: CredentialKind, node| {
        let fp = proxy.proxy.fingerprint(value);
        table.learn(fp, kind, node, Duration::from_secs(600), unix_now());
        fp
    };
    let only_b = learn("key-only-b", CredentialKind::ConsumerKey, b_id);
    let client_only_b = learn("client-only-b", CredentialKind::ClientId, b_id);
    let shared = learn("key-shared", CredentialKind::ConsumerKey, a_id);
    table.add_owner(shared, b_id);

    write(&path, &config_text(&[("a", a.url())], ""));
    let report = reload_from_file(&proxy.proxy, &path).unwrap();
    assert_eq!(report.nodes_removed, ["b"]);
    assert!(table.lookup(only_b, unix_now()).is_none());
    assert!(table.lookup(client_only_b, unix_now()).is_none());
    let kept = table.lookup(shared, unix_now()).expect("a still owns it");
    assert!(kept.owners().contains(a_id) && !kept.owners().contains(b_id));
    assert!(
        table.entries().all(|(_, e)| !e.owners().is_empty()),
        "an entry was left with no owner"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_bad_edit_seen_by_the_poll_and_then_by_sighup_is_counted_once() {
    let a = Origin::start("a").await;
    let dir = temp_dir("counted-once");
    let path = dir.join("config.toml");
    let good = config_text(&[("a", a.url())], "");
    write(&path, &good);
    let proxy = spawn_proxy(&good).await;
    let mut files = FileWatch::new(proxy.proxy.clone(), path.clone());
    assert!(matches!(files.on_poll(), Attempt::Unchanged));

    write(
        &path,
        &format!("{good}\n[upstream]\npolcy = \"round_robin\"\n"),
    );
    assert!(matches!(files.on_poll(), Attempt::Refused));
    assert!(matches!(files.on_hangup(), Attempt::RefusedAgain));
    assert!(matches!(files.on_poll(), Attempt::Unchanged));
    assert_eq!(proxy.proxy.reload_status().failed, 1);

    // A different bad edit is a new failure; a SIGHUP on a good file applies it.
    write(&path, &format!("{good}\n[health]\nrise = 0\n"));
    assert!(matches!(files.on_hangup(), Attempt::Refused));
    assert!(matches!(files.on_poll(), Attempt::Unchanged));
    assert_eq!(proxy.proxy.reload_status().failed, 2);
    write(&path, &good);
    assert!(matches!(files.on_hangup(), Attempt::Applied(_)));
    assert_eq!(proxy.proxy.reload_status().failed, 2);
    proxy.shutdown().await;
}
