//! Sockets with kernel receive timestamps: the arrival time of a packet is when the kernel queued it, not
//! when the load generator's busy thread got round to reading it, so the generator's own scheduling does
//! not show up as voxgate's jitter.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// Wall-clock nanoseconds (CLOCK_REALTIME, the clock of `SO_TIMESTAMPNS`).
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Asks the kernel to stamp every datagram received on `sock`. The first socket of a machine to ask turns
/// stamping on a moment later (packets in between are stamped when read), so enable before traffic starts.
pub fn enable_timestamps(sock: &UdpSocket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid fd and an int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Receives one datagram without blocking (the socket must be non-blocking). Returns its length and its
/// kernel timestamp (falls back to now when the kernel attached none); `None` when nothing is queued.
pub fn recv_stamped(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Option<(usize, u64)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one cmsg carrying a timespec, 8-byte aligned.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; every pointer set below stays valid for the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: fd is open, msg points at live buffers.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            // An ICMP port-unreachable from an earlier send surfaces here; it is not a datagram.
            io::ErrorKind::ConnectionRefused => Ok(None),
            _ => Err(e),
        };
    }
    let mut stamp = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some((n as usize, stamp.unwrap_or_else(realtime_ns))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_stamps_arrive_with_the_datagram() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        enable_timestamps(&rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        assert!(recv_stamped(&rx, &mut buf).unwrap().is_none());
        // The kernel turns stamping on a moment after the first socket asks (deferred static key); until
        // then packets are stamped when read. So try a few times on a busy machine.
        let mut last = (0, 0, 0);
        for _ in 0..20 {
            let before = realtime_ns();
            tx.send_to(b"hello", rx.local_addr().unwrap()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(30));
            let after = realtime_ns();
            let (n, at) = recv_stamped(&rx, &mut buf).unwrap().unwrap();
            assert_eq!(&buf[..n], b"hello");
            // Stamped on arrival, not when read 30 ms later.
            if at >= before && at + 20_000_000 < after {
                return;
            }
            last = (before, at, after);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("never stamped on arrival: {last:?}");
    }
}
