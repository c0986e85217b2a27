//! WebSockets through the proxy: both directions until either side closes, and an open
//! socket keeps its app awake; the app sleeps `max_idle` after the socket closes.

mod support;

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use paastis::model::State;
use support::TestEngine;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_flow_and_an_open_socket_keeps_the_app_awake() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ws_echo.py");
    let engine = TestEngine::start(&format!(
        r#"
defaults: {{max_idle: 1s}}
providers:
  - id: local
    type: process
    apps:
      - name: ws
        command: "exec python3 {}"
"#,
        script.display()
    ))
    .await;
    let mut request = format!("ws://{}/echo", engine.addr)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("host", "ws.localhost".parse().expect("host"));
    // The first connection wakes the app and is then upgraded.
    let (socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket through the proxy");
    assert_eq!(response.status(), 101);
    let (mut sink, mut stream) = socket.split();

    let sender = tokio::spawn(async move {
        for n in 0..10_000 {
            sink.send(Message::text(format!("message {n}")))
                .await
                .expect("send");
        }
        sink
    });
    for n in 0..10_000 {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("echo in time")
            .expect("open")
            .expect("message");
        assert_eq!(message, Message::text(format!("message {n}")));
    }
    let mut sink = sender.await.expect("sender");

    // Three times max_idle with the socket open and silent: still awake.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(engine.state("ws"), State::Awake);

    // Closed: the app sleeps about max_idle later.
    sink.send(Message::Close(None)).await.expect("close");
    drop(sink);
    drop(stream);
    let closed = tokio::time::Instant::now();
    engine
        .wait_state("ws", State::Asleep, Duration::from_secs(6))
        .await;
    assert!(
        closed.elapsed() >= Duration::from_millis(900),
        "{:?}",
        closed.elapsed()
    );
    engine.stop().await;
}
