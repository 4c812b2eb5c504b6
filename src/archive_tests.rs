//! Unit tests of `archive`: node and root encodings round trip, older nodes encode as before,
//! and every length and count beyond its limit is refused.

use super::*;

#[test]
fn nodes_and_root_round_trip() {
    let n = Node {
        path: b"a/b\nc".to_vec(),
        kind: NodeKind::File,
        mode: 0o100644,
        uid: 1,
        gid: 2,
        mtime: -5,
        mtime_ns: 999_999_999,
        size: 10,
        blocks: vec![([3; 32], 10)],
        target: vec![],
        partial: true,
        rdev: 0,
        xattrs: vec![],
        uname: vec![],
        gname: vec![],
    };
    let mut w = Writer::new();
    n.encode(&mut w);
    let plain = w.finish();
    assert_eq!(decode_nodes(&plain).unwrap(), vec![n.clone()]);
    assert_eq!(plain[0], 1, "a node without the later features is encoded as before");
    let xattrs = vec![(b"system.posix_acl_access".to_vec(), vec![2, 0, 0, 0]), (b"user.a".to_vec(), vec![])];
    let later = [
        Node { xattrs: xattrs.clone(), ..n.clone() },
        Node { target: b"a/b\nc".to_vec(), ..Node::new(b"h".to_vec(), NodeKind::Hardlink) },
        Node::new(b"p".to_vec(), NodeKind::Fifo),
        Node { uname: b"alice".to_vec(), gname: b"staff".to_vec(), ..n.clone() },
        Node {
            gname: b"wheel".to_vec(),
            xattrs: vec![(b"user.x".to_vec(), vec![1])],
            ..Node::new(b"d".to_vec(), NodeKind::Dir)
        },
        Node { rdev: 0x0103, xattrs, ..Node::new(b"null".to_vec(), NodeKind::CharDev) },
        Node { rdev: 8 << 8, ..Node::new(b"sda".to_vec(), NodeKind::BlockDev) },
    ];
    let mut w = Writer::new();
    for node in &later {
        node.encode(&mut w);
    }
    assert_eq!(decode_nodes(&w.finish()).unwrap(), later);
    let root =
        Root { name: "x".into(), time: 7, host: "h".into(), meta: vec![([1; 32], 5)], command: vec![] };
    assert_eq!(Root::decode(&root.encode()).unwrap(), root);
    // A command line is appended after the metadata list; a root without one keeps the bytes
    // roots had before it existed (readers from before it stop after the list).
    let mut w = Writer::new();
    w.u8(crate::archive::VERSION).str("x").ivar(7).str("h").uvar(1).id(&[1; 32]).uvar(5);
    assert_eq!(root.encode(), w.finish());
    let with = Root { command: vec![b"tarsnap".to_vec(), b"-c".to_vec(), vec![0xff]], ..root.clone() };
    assert_eq!(Root::decode(&with.encode()).unwrap(), with);
    let mut bytes = with.encode();
    bytes.truncate(bytes.len() - 1);
    assert!(Root::decode(&bytes).is_err(), "a cut command line is refused");
}

#[test]
fn roots_and_nodes_beyond_the_limits_are_refused() {
    let root = |meta: Vec<(BlockId, u32)>| Root {
        name: "x".into(),
        time: 7,
        host: "h".into(),
        meta,
        command: vec![],
    };
    let ok = root(vec![([1; 32], 100), ([2; 32], 50), ([1; 32], 100), ([1; 32], 100), ([1; 32], 100)]);
    assert!(Root::decode(&ok.encode()).is_ok(), "four times over is allowed");
    for bad in [
        root(vec![([1; 32], 100); 5]),
        root(vec![([1; 32], 100), ([1; 32], 101)]),
        root(vec![([1; 32], MAX_PLAIN + 1)]),
    ] {
        let err = Root::decode(&bad.encode()).unwrap_err().to_string();
        assert!(err.contains("damaged or hostile"), "{err}");
    }
    let mut w = Writer::new();
    w.u8(2).bytes(&[b'a'; MAX_PATH + 1]).uvar(0o40755).uvar(0).uvar(0).ivar(0).uvar(0);
    assert!(decode_nodes(&w.finish()).unwrap_err().to_string().contains("path of 65537 bytes"));
    let mut w = Writer::new();
    w.u8(2).bytes(b"a").uvar(1 << 32).uvar(0).uvar(0).ivar(0).uvar(0);
    assert!(decode_nodes(&w.finish()).is_err(), "a mode beyond 32 bits is refused, not truncated");
}

#[test]
fn owner_names_beyond_the_limit_are_refused() {
    for (name, ok) in [
        (vec![b'u'; MAX_OWNER_NAME], true),
        (vec![b'u'; MAX_OWNER_NAME + 1], false),
        (b"a\0b".to_vec(), false),
    ] {
        let mut w = Writer::new();
        Node { uname: name, ..Node::new(b"f".to_vec(), NodeKind::Dir) }.encode(&mut w);
        let got = decode_nodes(&w.finish());
        assert_eq!(got.is_ok(), ok, "{got:?}");
        if !ok {
            assert!(got.unwrap_err().to_string().contains("owner name"));
        }
    }
}
