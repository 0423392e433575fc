//! What an idle pooled connection costs once parked: clients keep connections open
//! between calls, tens of thousands of them at a large site, and a parked one must
//! hold its socket and its bookkeeping, not hyper's buffers (8 KiB of read buffer
//! alone). Counted by this binary's own allocator, so the figure is the heap the
//! server holds, not the machine's page accounting (`bench/STREAMS.md` has the RSS).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

/// The system allocator, counting the bytes live at any moment.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(p, layout, new_size) };
        if !moved.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CONNECTIONS: usize = 200;

/// Sends one call on `conn` and reads its whole answer (a `content-length` body).
fn one_call(conn: &mut std::net::TcpStream) {
    conn.write_all(b"GET /v1/models HTTP/1.1\r\nhost: gw\r\n\r\n")
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).ends_with("\r\n\r\nok") {
        let n = conn.read(&mut buf).expect("read");
        assert!(n > 0, "closed before the answer");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_parked_connection_holds_about_a_kilobyte_not_hypers_buffers() {
    // Parked after a sixth of the idle limit (0.5 s), closed after all of it.
    let idle = Duration::from_secs(3);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(ai_gateway::server::serve(
        listener,
        |_req| async { http::Response::new(ai_gateway::body::full("ok")) },
        std::future::pending(),
        Duration::from_secs(1),
        idle,
        ai_gateway::server::ConnectionBudget::default(),
    ));
    // The clients are plain blocking sockets, so they allocate nothing themselves.
    let client = tokio::task::spawn_blocking(move || {
        // One connection served first, so that what is built once is not counted.
        let mut warm = std::net::TcpStream::connect(addr).expect("connect");
        one_call(&mut warm);
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        let conns: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let mut conn = std::net::TcpStream::connect(addr).expect("connect");
                one_call(&mut conn);
                conn
            })
            .collect();
        let unparked = LIVE_BYTES.load(Ordering::Relaxed) - before;
        // Past two sweeps after the park delay, well before the idle limit.
        std::thread::sleep(idle / 2);
        let parked = LIVE_BYTES.load(Ordering::Relaxed) - before;
        // Parked, not closed: every connection serves its next call.
        for mut conn in conns {
            one_call(&mut conn);
        }
        drop(warm);
        (
            unparked / CONNECTIONS as isize,
            parked / CONNECTIONS as isize,
        )
    });
    let (unparked, parked) = client.await.expect("the clients");
    assert!(
        unparked > 8 * 1024,
        "a connection between calls holds hyper's buffers, or this test measures nothing: {unparked} bytes"
    );
    assert!(
        parked < 2 * 1024,
        "a parked connection holds {parked} bytes, {unparked} before parking"
    );
}
