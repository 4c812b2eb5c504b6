//! Facts about this process and this moment that several commands record: the time, the host
//! name, the lock owner string naming this process to whoever finds the repository locked, and
//! random ids (repositories, transactions, lease tokens). A
//! leaf module: it imports nothing from the crate, so any module may use it.

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a valid buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "unknown".into();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

pub fn owner(command: &str) -> String {
    format!("archiver {command}, pid {} on host {}", std::process::id(), hostname())
}

/// A random 128-bit id in hex (repositories, transactions, lease tokens).
pub fn random_id() -> anyhow::Result<String> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b)
        .map_err(|e| anyhow::anyhow!("reading the system's random number generator: {e}"))?;
    Ok(hex::encode(b))
}
