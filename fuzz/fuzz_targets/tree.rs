//! The tree format (`cairn_client::tree::Tree::decode`): one blob per
//! directory, read back on restore, check and ls from a vault whose storage
//! is not trusted beyond its AEAD. Protects: no panic and no allocation
//! beyond the input for any bytes; every tree that decodes has only safe,
//! sorted, unique names (so a restore cannot write outside its target),
//! valid times and fields that fit each entry's kind; and decode(encode(t))
//! == t with a deterministic encoding (unchanged directories dedup).
#![no_main]

use cairn_client::tree::{is_safe_name, Kind, Tree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = Tree::decode(data) else {
        return;
    };
    for (i, e) in tree.entries.iter().enumerate() {
        assert!(is_safe_name(&e.name), "unsafe name {:?}", e.name);
        assert!(i == 0 || tree.entries[i - 1].name < e.name, "unsorted");
        assert!(e.mtime.nsec < 1_000_000_000 && e.ctime.nsec < 1_000_000_000);
        assert_eq!(e.kind == Kind::Dir, e.subtree.is_some());
        if e.kind != Kind::File {
            assert!(e.content.is_empty());
        }
        assert!(tree.find(&e.name).is_some_and(|f| f == e));
    }
    let bytes = tree.encode().expect("a decoded tree encodes");
    assert!(
        bytes.len() <= data.len(),
        "re-encoding is never longer than the input"
    );
    let back = Tree::decode(&bytes).expect("a re-encoded tree decodes");
    assert_eq!(back, tree);
    assert_eq!(
        back.encode().expect("encode"),
        bytes,
        "deterministic encoding"
    );
});
