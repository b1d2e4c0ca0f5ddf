use super::*;

#[test]
fn cursors_in_journalctls_form() {
    let at = Location {
        seqnum_id: [0xab; 16],
        seqnum: 0x1f,
        boot_id: [0x01; 16],
        monotonic: 0,
        realtime: 0x5f3c_0000_0001,
        xor_hash: u64::MAX,
    };
    let text = format_cursor(&at);
    assert_eq!(
        text,
        "s=abababababababababababababababab;i=1f;b=01010101010101010101010101010101;m=0;t=5f3c00000001;x=ffffffffffffffff"
    );
    let cursor = Cursor::parse(&text).expect("a cursor");
    assert_eq!(parse_cursor(&cursor).expect("parsed"), at);
    for partial in ["s=ab", "i=1;i=2", "s=abab;i=1;b=01;m=0;t=1;x=1", "s=zz;i=1;b=1;m=0;t=1;x=1;q=1"] {
        let cursor = Cursor::parse(partial).expect("a cursor");
        let e = parse_cursor(&cursor).expect_err(partial);
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{partial}");
    }
}
