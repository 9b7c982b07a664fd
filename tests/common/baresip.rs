//! baresip (an independent SIP softphone, run headless) as a caller or, with `;answermode=auto`, as a human
//! agent that answers voxgate's hand-offs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Baresip {
    child: Child,
    ctrl: u16,
    dir: PathBuf,
    /// The SIP port baresip listens on (127.0.0.1).
    pub sip_port: u16,
}

impl Baresip {
    /// `account_params` go on the account line, e.g. `;audio_codecs=opus/48000/2`.
    pub fn start(dir: &Path, caller_wav: &Path, account_params: &str) -> Self {
        std::fs::create_dir_all(dir).expect("baresip dir");
        let sip = super::free_port();
        let ctrl = super::free_port();
        // The player is an aubridge device with no source, so nothing plays: what baresip
        // heard is in sndfile's dump. ALSA's `null` device accepts writes without pacing and
        // baresip spun a whole core on it, which starved whisper on this 2-core box (a 3 s
        // utterance exceeded the 10 s decode budget in CI).
        let config = format!(
            "sip_listen 127.0.0.1:{sip}\nnet_interface 127.0.0.1\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule opus.so\nmodule aufile.so\nmodule sndfile.so\nmodule aubridge.so\n\
             module account.so\nmodule ctrl_tcp.so\nmodule menu.so\n\
             audio_source aufile,{src}\naudio_player aubridge,sink\naudio_alert aubridge,sink\n\
             ausrc_srate 8000\nauplay_srate 8000\nausrc_channels 1\nauplay_channels 1\n\
             snd_path {dir}\nctrl_tcp_listen 127.0.0.1:{ctrl}\n\
             ",
            src = caller_wav.display(),
            dir = dir.display(),
        );
        std::fs::write(dir.join("config"), config).expect("config");
        std::fs::write(
            dir.join("accounts"),
            format!("<sip:caller@127.0.0.1:{sip}>;regint=0{account_params}\n"),
        )
        .expect("accounts");
        std::fs::write(dir.join("contacts"), "").expect("contacts");
        let log = std::fs::File::create(dir.join("baresip.log")).expect("log");
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("baresip must be installed (Debian package baresip-core)");
        let b = Self {
            child,
            ctrl,
            dir: dir.to_path_buf(),
            sip_port: sip,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", ctrl)).is_err() {
            assert!(
                Instant::now() < deadline,
                "baresip ctrl_tcp never came up: {}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// Sends one ctrl_tcp command (netstring-framed JSON) and returns the raw reply.
    pub fn command(&self, command: &str, params: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.ctrl)).expect("ctrl_tcp");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let json =
            serde_json::json!({"command": command, "params": params, "token": "t"}).to_string();
        write!(s, "{}:{},", json.len(), json).expect("write");
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An 8 kHz mono WAV for baresip's audio source (aufile ends the call at end of file).
pub fn caller_wav(path: &Path, pcm: &[i16]) {
    super::write_wav(path, pcm);
}

/// A dump baresip's sndfile module wrote: `-enc` (what it sent) or `-dec` (what it heard).
pub fn dump(dir: &Path, suffix: &str) -> Vec<i16> {
    let path = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("baresip wrote no {suffix} dump"));
    voxgate_media::wav::load_wav_8k_mono(&path).expect("dump")
}
