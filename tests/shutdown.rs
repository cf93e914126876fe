//! SIGTERM while a request is in flight: the server stops, but only after it has answered that
//! request, and what the request wrote is stored (src/app.rs `shutdown_signal`).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_hujjat"))
            .arg("serve")
            .env("DATABASE_URL", &url)
            .env("HUJJAT_DATA_DIR", dir.path())
            .env("HUJJAT_LISTEN", format!("127.0.0.1:{port}"))
            .env("HUJJAT_DEMO_LISTEN", "127.0.0.1:0")
            .env("HUJJAT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hujjat"),
    );
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // a create whose body arrives in two halves, with SIGTERM in between
    let body = std::fs::read(shared().join("spec/forms/form-003.example.json")).unwrap();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        conn,
        "POST /forms/003/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{}:{}", DEMO.0, DEMO.1)),
        body.len()
    )
    .unwrap();
    let half = body.len() / 2;
    conn.write_all(&body[..half]).unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500)); // accepted, headers read, handler waiting for the rest
    let st = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.0.try_wait().unwrap().is_none(), "the server exited with a request in flight");

    conn.write_all(&body[half..]).unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{}", &answer[..answer.len().min(300)]);
    let location = answer
        .lines()
        .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
        .expect("a Location header")
        .trim()
        .to_string();
    let id = location.strip_prefix("/documents/").unwrap();

    // then it exits by itself, successfully, and no longer accepts connections
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the server did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    // the document the last request created is stored
    let store = hujjat::store::Store::connect(&url).await.unwrap();
    let doc = store.document(id).await.unwrap().expect("the document is stored");
    assert_eq!((doc.version, doc.state.as_str()), (1, "draft"));
}
