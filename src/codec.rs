//! The binary encoding used by every versioned structure in the repository (manifest, index
//! segments, pack headers, archive metadata, commit records): LEB128 varints, length-prefixed byte strings,
//! fixed 32-byte ids. Decoding never panics on hostile input: every read is bounds-checked and a
//! short or malformed buffer is an error naming what was being decoded.

use anyhow::{bail, Result};

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn uvar(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }
    /// Signed values (timestamps before 1970) use zig-zag encoding.
    pub fn ivar(&mut self, v: i64) -> &mut Self {
        self.uvar(((v << 1) ^ (v >> 63)) as u64)
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.uvar(b.len() as u64);
        self.buf.extend_from_slice(b);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    pub fn id(&mut self, id: &[u8; 32]) -> &mut Self {
        self.buf.extend_from_slice(id);
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
    /// A read failed for want of bytes (the input may go on beyond `buf`).
    short: bool,
}

impl<'a> Reader<'a> {
    /// `what` names the structure in error messages ("manifest", "index segment", ...).
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what, short: false }
    }
    /// Bytes decoded so far.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Whether the last failure was for want of bytes: a stream decoded piece by piece may hold
    /// the rest in its next piece.
    pub fn ran_short(&self) -> bool {
        self.short
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            self.short = true;
            bail!("{} is truncated or malformed", self.what);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn uvar(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("{} has an overlong number", self.what)
    }
    pub fn ivar(&mut self) -> Result<i64> {
        let u = self.uvar()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    /// A number that must fit in 32 bits (lengths, modes, user ids): a larger one is refused, never
    /// truncated.
    pub fn u32(&mut self) -> Result<u32> {
        u32::try_from(self.uvar()?)
            .map_err(|_| anyhow::anyhow!("{} is malformed (a number is out of range)", self.what))
    }
    pub fn usize(&mut self) -> Result<usize> {
        usize::try_from(self.uvar()?).map_err(|_| anyhow::anyhow!("{} is malformed", self.what))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.usize()?;
        self.take(n)
    }
    pub fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| anyhow::anyhow!("{} has a non-UTF-8 name", self.what))
    }
    pub fn id(&mut self) -> Result<[u8; 32]> {
        Ok(self.take(32)?.try_into().expect("32 bytes"))
    }
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }
    /// A count of items about to be decoded, sanity-checked against the bytes left so a corrupt
    /// length cannot make us allocate gigabytes.
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize> {
        let n = self.usize()?;
        if n.saturating_mul(min_item_bytes.max(1)) > self.buf.len() - self.pos {
            self.short = true;
            bail!("{} is truncated or malformed", self.what);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let mut w = Writer::new();
        w.uvar(0).uvar(300).uvar(u64::MAX).ivar(-5).str("héllo").id(&[7; 32]);
        let buf = w.finish();
        let mut r = Reader::new(&buf, "test");
        assert_eq!(r.uvar().unwrap(), 0);
        assert_eq!(r.uvar().unwrap(), 300);
        assert_eq!(r.uvar().unwrap(), u64::MAX);
        assert_eq!(r.ivar().unwrap(), -5);
        assert_eq!(r.string().unwrap(), "héllo");
        assert_eq!(r.id().unwrap(), [7; 32]);
        assert!(r.is_empty());
        for cut in 0..buf.len() {
            let mut r = Reader::new(&buf[..cut], "test");
            let ok = (|| -> Result<()> {
                r.uvar()?;
                r.uvar()?;
                r.uvar()?;
                r.ivar()?;
                r.string()?;
                r.id()?;
                Ok(())
            })();
            assert!(ok.is_err());
        }
    }
}
