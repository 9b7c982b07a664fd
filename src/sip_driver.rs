//! The signalling driver: sockets and timers around the sans-IO SIP endpoint.
//!
//! UDP and TCP listeners feed one channel; a single task owns the [`Controller`] (and so the endpoint),
//! feeds it input, fires its timer and writes out what it wants sent. TCP connections get a reader task
//! (framing by Content-Length) and a writer task; the core addresses them by remote address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use voxgate_sip::endpoint::Transport;
use voxgate_sip::framing::StreamDecoder;

use crate::calls::Controller;
use crate::media_engine::MediaEvent;

/// Largest SIP datagram we accept (RFC 3261 §18.1.1 suggests staying under MTU; trunks do send up to ~4 KiB).
const MAX_DATAGRAM: usize = 65_535;
/// TCP connections served at once; a trunk needs a handful, so this only bounds abuse.
const MAX_TCP_CONNECTIONS: usize = 1024;
/// A TCP connection with no bytes for this long is closed (trunks send CRLF keep-alives far more often).
const TCP_IDLE: Duration = Duration::from_secs(600);
/// Framing limits per TCP message: SDP and SIP-I bodies are a few KiB.
const TCP_MAX_HEAD: usize = 64 * 1024;
const TCP_MAX_BODY: usize = 128 * 1024;

enum NetInput {
    Datagram {
        local: SocketAddr,
        remote: SocketAddr,
        data: Vec<u8>,
    },
    Stream {
        local: SocketAddr,
        remote: SocketAddr,
        data: Vec<u8>,
    },
    TcpOpened {
        remote: SocketAddr,
        tx: mpsc::Sender<Vec<u8>>,
    },
    TcpClosed {
        remote: SocketAddr,
    },
}

/// Bound listeners, created before the runtime starts serving so bind errors stop start-up.
pub struct Listeners {
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tcp: Vec<(SocketAddr, TcpListener)>,
}

impl Listeners {
    pub async fn bind(udp: &[SocketAddr], tcp: &[SocketAddr]) -> std::io::Result<Self> {
        let mut out = Self {
            udp: Vec::new(),
            tcp: Vec::new(),
        };
        for addr in udp {
            let s = UdpSocket::bind(addr)
                .await
                .map_err(|e| annotate(e, "UDP", addr))?;
            let local = s.local_addr()?;
            tracing::info!(%local, "SIP UDP listening");
            out.udp.push((local, Arc::new(s)));
        }
        for addr in tcp {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| annotate(e, "TCP", addr))?;
            let local = l.local_addr()?;
            tracing::info!(%local, "SIP TCP listening");
            out.tcp.push((local, l));
        }
        Ok(out)
    }
}

fn annotate(e: std::io::Error, proto: &str, addr: &SocketAddr) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("cannot listen for SIP on {proto} {addr}: {e}"),
    )
}

/// Runs signalling until `shutdown` flips, then hangs up every call and waits (bounded) for the BYEs to finish.
pub async fn run(
    listeners: Listeners,
    mut controller: Controller,
    mut media_events: mpsc::UnboundedReceiver<MediaEvent>,
    mut shutdown: watch::Receiver<bool>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Controller {
    let (net_tx, mut net_rx) = mpsc::channel::<NetInput>(4096);
    let mut udp_out: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    for (local, sock) in listeners.udp {
        udp_out.insert(local, sock.clone());
        tokio::spawn(udp_reader(local, sock, net_tx.clone()));
    }
    for (local, listener) in listeners.tcp {
        tokio::spawn(tcp_acceptor(local, listener, net_tx.clone()));
    }
    let mut tcp_out: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut draining_since: Option<Instant> = None;

    loop {
        let timer = controller.poll_timeout();
        let sleep = async {
            match timer {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(input) = net_rx.recv() => {
                let now = Instant::now();
                match input {
                    NetInput::Datagram { local, remote, data } => {
                        controller.endpoint.handle_input(now, Transport::Udp, local, remote, &data);
                    }
                    NetInput::Stream { local, remote, data } => {
                        controller.endpoint.handle_input(now, Transport::Tcp, local, remote, &data);
                    }
                    NetInput::TcpOpened { remote, tx } => { tcp_out.insert(remote, tx); }
                    NetInput::TcpClosed { remote } => { tcp_out.remove(&remote); }
                }
            }
            Some(ev) = media_events.recv() => {
                controller.on_media_event(Instant::now(), ev);
            }
            () = sleep => {
                controller.handle_timeout(Instant::now());
            }
            changed = shutdown.changed(), if draining_since.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    let n = controller.hangup_all(Instant::now());
                    tracing::info!(calls = n, "shutting down: hanging up calls");
                    draining_since = Some(Instant::now());
                }
            }
            () = tokio::time::sleep(Duration::from_millis(100)), if draining_since.is_some() => {}
        }
        let now = Instant::now();
        controller.drain_sip_events(now);
        while let Some(t) = controller.endpoint.poll_transmit() {
            match t.transport {
                Transport::Udp => {
                    let sock = udp_out
                        .get(&t.local)
                        .or_else(|| udp_out.values().find(|s| same_family(s, t.remote)));
                    match sock {
                        Some(s) => {
                            if let Err(e) = s.try_send_to(&t.payload, t.remote) {
                                if e.kind() == std::io::ErrorKind::WouldBlock {
                                    let _ = s.send_to(&t.payload, t.remote).await;
                                } else {
                                    tracing::debug!(remote = %t.remote, error = %e, "SIP UDP send failed");
                                }
                            }
                        }
                        None => {
                            tracing::warn!(remote = %t.remote, "no UDP socket to send SIP from")
                        }
                    }
                }
                Transport::Tcp => match tcp_out.get(&t.remote) {
                    Some(tx) => {
                        if tx.try_send(t.payload).is_err() {
                            tracing::warn!(remote = %t.remote, "TCP connection backlogged or gone; message dropped");
                        }
                    }
                    None => tracing::debug!(remote = %t.remote, "no TCP connection to send SIP on"),
                },
            }
        }
        crate::metrics::Metrics::set(&metrics.calls_active, controller.active_calls() as u64);
        metrics.publish_sip(&controller.endpoint.stats());
        if let Some(since) = draining_since {
            if controller.open_calls() == 0 || since.elapsed() > Duration::from_secs(5) {
                return controller;
            }
        }
    }
}

fn same_family(s: &UdpSocket, remote: SocketAddr) -> bool {
    s.local_addr()
        .map(|l| l.is_ipv4() == remote.is_ipv4())
        .unwrap_or(false)
}

async fn udp_reader(local: SocketAddr, sock: Arc<UdpSocket>, tx: mpsc::Sender<NetInput>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, remote)) => {
                let data = buf.get(..n).unwrap_or(&[]).to_vec();
                if tx
                    .send(NetInput::Datagram {
                        local,
                        remote,
                        data,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // ICMP port unreachable surfaces as ConnectionReset on some systems: not fatal for a listener.
            Err(e) => tracing::debug!(%local, error = %e, "SIP UDP receive error"),
        }
    }
}

async fn tcp_acceptor(local: SocketAddr, listener: TcpListener, tx: mpsc::Sender<NetInput>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%remote, "too many SIP TCP connections; refusing");
                    drop(stream);
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    tcp_connection(local, remote, stream, tx).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(%local, error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn tcp_connection(
    local: SocketAddr,
    remote: SocketAddr,
    stream: TcpStream,
    tx: mpsc::Sender<NetInput>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(256);
    if tx
        .send(NetInput::TcpOpened { remote, tx: out_tx })
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if wr.write_all(&msg).await.is_err() {
                break;
            }
        }
    });
    let mut decoder = StreamDecoder::with_limits(TCP_MAX_HEAD, TCP_MAX_BODY);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match tokio::time::timeout(TCP_IDLE, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) => {
                tracing::debug!(%remote, "closing idle SIP TCP connection");
                break;
            }
        };
        decoder.push(buf.get(..n).unwrap_or(&[]));
        loop {
            match decoder.pop() {
                Ok(Some(data)) => {
                    if tx
                        .send(NetInput::Stream {
                            local,
                            remote,
                            data,
                        })
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // A stream we cannot frame cannot be resynchronised: close it rather than stall.
                    tracing::info!(%remote, error = %e, "closing TCP connection with unframeable SIP");
                    break 'read;
                }
            }
        }
    }
    let _ = tx.send(NetInput::TcpClosed { remote }).await;
    writer.abort();
}
