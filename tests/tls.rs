//! The optional TLS listener: HTTP/2 and HTTP/1.1 by ALPN (spoken to by curl), the same
//! routing and wakes as the plain listener, `X-Forwarded-Proto: https` upstream, and the
//! certificate read again on SIGHUP without a restart (a broken one is refused, the one in
//! use stays).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::{TempDir, TestEngine, upstream_command};

async fn curl(args: &[&str]) -> String {
    support::curl(args).await.0
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/tls")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_h2_and_http1_to_the_tls_listener() {
    let engine = TestEngine::start(&format!(
        r#"
tls:
  listen: 127.0.0.1:0
  cert: '{}'
  key: '{}'
providers:
  - id: local
    type: process
    apps:
      - name: hello
        command: "{}"
        env: {{APP_NAME: hello}}
"#,
        fixture("other.pem").display(),
        fixture("other.key").display(),
        upstream_command()
    ))
    .await;
    let port = engine.tls_addr.expect("a TLS listener").port();
    let resolve = format!("hello.localhost:{port}:127.0.0.1");
    let ca = fixture("other-ca.pem");
    let ca = ca.to_str().expect("utf-8 path");
    let url = format!("https://hello.localhost:{port}");

    // The app is asleep: the first request wakes it and is held until it answers.
    for (version, expected) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let body = curl(&[
            version,
            "--cacert",
            ca,
            "--resolve",
            &resolve,
            "-w",
            "\n%{http_version} %{http_code}",
            &format!("{url}/"),
        ])
        .await;
        assert_eq!(
            body,
            format!("hello from hello\n{expected} 200"),
            "{version}"
        );
    }
    // The app learns the client came over HTTPS.
    let headers = curl(&[
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        &format!("{url}/headers"),
    ])
    .await;
    let headers: serde_json::Value = serde_json::from_str(&headers).expect("headers json");
    assert_eq!(headers["x-forwarded-proto"][0], "https", "{headers}");
    assert_eq!(
        headers["x-forwarded-host"][0],
        format!("hello.localhost:{port}")
    );
    // The plain listener serves the same app at the same time.
    let plain = support::TestClient::new(engine.addr)
        .get("hello.localhost", "/")
        .await;
    assert_eq!(plain.text(), "hello from hello");
    assert_eq!(
        engine.count("hello", |k| matches!(
            k,
            paastis::events::EventKind::Started { .. }
        )),
        1
    );
    engine.stop().await;
}

/// The certificate the TLS listener at `addr` presents now (a fresh connection).
async fn presented_certificate(addr: SocketAddr) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in ["ca.pem", "other-ca.pem"] {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        for certificate in CertificateDer::pem_file_iter(fixture(ca)).expect("ca file") {
            roots.add(certificate.expect("ca")).expect("add ca");
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, stream).await.expect("handshake");
    let (_, connection) = tls.get_ref();
    connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| leaf.to_vec())
        .expect("a certificate")
}

fn pem_certificate(file: &Path) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(file)
        .expect("certificate")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_keeps_it_when_the_new_one_is_broken() {
    let dir = TempDir::new("tls-reload");
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    std::fs::copy(fixture("localhost.pem"), &cert).expect("copy cert");
    std::fs::copy(fixture("localhost.key"), &key).expect("copy key");
    let config = dir.path("paastis.yml");
    std::fs::write(
        &config,
        format!(
            "tls: {{listen: '127.0.0.1:0', cert: '{}', key: '{}'}}\nproviders: []\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("write config");
    let served = support::serve(&config, &[("LOG_LEVEL", "info")]).await;
    let pid = served.child.id().expect("pid") as i32;
    let tls_addr = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let logs = served.logs();
            let found = logs.lines().find_map(|line| {
                let json: serde_json::Value = serde_json::from_str(line).ok()?;
                let message = json["message"].as_str()?;
                message
                    .starts_with("proxy listening on https://")
                    .then(|| {
                        json["addr"]
                            .as_str()
                            .and_then(|a| a.parse::<SocketAddr>().ok())
                    })?
            });
            if let Some(addr) = found {
                break addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no TLS listener logged:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let first = pem_certificate(&fixture("localhost.pem"));
    let second = pem_certificate(&fixture("other.pem"));
    assert_eq!(presented_certificate(tls_addr).await, first);

    // Renewed files + SIGHUP: new connections get the new certificate, no restart.
    std::fs::copy(fixture("other.pem"), &cert).expect("copy cert");
    std::fs::copy(fixture("other.key"), &key).expect("copy key");
    support::signal(pid, Signal::SIGHUP);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while presented_certificate(tls_addr).await != second {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reloaded:\n{}",
            served.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served.logs().contains("TLS certificate reloaded"));

    // A broken key: refused with the file named, the certificate in use stays.
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
    )
    .expect("write key");
    support::signal(pid, Signal::SIGHUP);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !served.logs().contains("not reloaded") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload error logged:\n{}",
            served.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served.logs().contains(&key.display().to_string()));
    assert!(!served.logs().contains("BEGIN PRIVATE KEY"));
    assert_eq!(presented_certificate(tls_addr).await, second);
    assert!(support::process_running(pid));
    support::signal(pid, Signal::SIGTERM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_certificate_stops_the_start_with_the_file_named() {
    let dir = TempDir::new("tls-bad");
    let config = dir.path("paastis.yml");
    std::fs::write(
        &config,
        format!(
            "tls: {{listen: '127.0.0.1:0', cert: '{}', key: '{}'}}\nproviders: []\n",
            fixture("localhost.pem").display(),
            fixture("other.key").display()
        ),
    )
    .expect("write config");
    let output = support::paastis()
        .args([
            "serve",
            "--config",
            &config.to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("other.key"), "{stderr}");
    assert!(!stderr.contains("BEGIN"), "{stderr}");

    // A `tls` section without its files: a config error, with the paths.
    std::fs::write(&config, "tls: {listen: '127.0.0.1:0'}\n").expect("write config");
    let output = support::paastis()
        .args(["check", "--config", &config.to_string_lossy()])
        .output()
        .await
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tls.cert: is required"), "{stderr}");
    assert!(stderr.contains("tls.key: is required"), "{stderr}");
}
