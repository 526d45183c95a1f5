//! Path patterns for `--exclude` (backup and restore) and `--include`
//! (restore), with restic's rules, so a pattern means the same in every
//! command:
//!
//! - `*` matches any run of characters within one path component, `?` one
//!   character, `[abc]`/`[a-z]` one of a set, `\x` the character `x`;
//! - `**` as a whole component matches any number of components (none
//!   included);
//! - a pattern starting with `/` is anchored at the root; any other pattern
//!   matches at any depth (`sub/file` matches `/a/sub/file` and `/sub/file`);
//! - a pattern that matches a directory matches everything below it
//!   ([`Patterns::matches_within`]); a trailing `/` is ignored.
//!
//! Pure: no IO, tested against these rules with property tests.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// A compiled list of patterns; a path matches when any one does.
#[derive(Debug, Clone)]
pub struct Patterns {
    set: GlobSet,
    empty: bool,
}

impl Patterns {
    /// Compiles `patterns`; `flag` (e.g. `--exclude`) names them in errors.
    pub fn new(patterns: &[String], flag: &str) -> Result<Self> {
        let mut set = GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            if trimmed.is_empty() && !p.starts_with('/') {
                return Err(Error::Invalid(format!("{flag}: empty pattern")));
            }
            // `/` alone anchors nothing and means everything.
            let full = match trimmed {
                "" => "/**".to_string(),
                t if t.starts_with('/') => t.to_string(),
                t => format!("**/{t}"),
            };
            let glob = GlobBuilder::new(&full)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::Invalid(format!("bad {flag} pattern {p:?}: {e}")))?;
            set.add(glob);
        }
        Ok(Self {
            set: set
                .build()
                .map_err(|e| Error::Invalid(format!("{flag}: {e}")))?,
            empty: patterns.is_empty(),
        })
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Whether a pattern matches the absolute `path` itself. Walkers that
    /// test each level on the way down (and stop at a match) need no more.
    pub fn is_match(&self, path: &Path) -> bool {
        self.set.is_match(path)
    }

    /// Whether a pattern matches `path` or a directory above it.
    pub fn matches_within(&self, path: &Path) -> bool {
        path.ancestors()
            .take_while(|p| p.as_os_str().len() > 1)
            .any(|p| self.is_match(p))
    }
}

/// The entries of a pattern or path list file (`--exclude-file`,
/// `--files-from`): one per line, surrounding blanks trimmed, empty lines
/// and lines starting with `#` skipped.
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;

    fn pats(p: &[&str]) -> Patterns {
        Patterns::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "--x").unwrap()
    }

    #[test]
    fn restic_examples() {
        let p = pats(&["*.go"]);
        assert!(p.is_match(Path::new("/a/b/x.go")));
        assert!(!p.is_match(Path::new("/a/b/x.gox")));
        let p = pats(&["sub/file"]);
        assert!(p.is_match(Path::new("/sub/file")));
        assert!(p.is_match(Path::new("/home/me/sub/file")));
        assert!(!p.is_match(Path::new("/home/me/xsub/file")));
        let p = pats(&["/home/*/cache"]);
        assert!(p.is_match(Path::new("/home/me/cache")));
        assert!(
            !p.is_match(Path::new("/home/a/b/cache")),
            "* stays in one component"
        );
        assert!(!p.is_match(Path::new("/srv/home/me/cache")), "anchored");
        assert!(p.matches_within(Path::new("/home/me/cache/deep/file")));
        let p = pats(&["/src/**/*.o"]);
        assert!(p.is_match(Path::new("/src/x.o")));
        assert!(p.is_match(Path::new("/src/a/b/x.o")));
        let p = pats(&["dir/"]);
        assert!(p.is_match(Path::new("/x/dir")));
        assert!(pats(&["/"]).matches_within(Path::new("/anything")));
        assert!(matches!(
            Patterns::new(&["a[".into()], "--exclude"),
            Err(Error::Invalid(m)) if m.contains("bad --exclude pattern")
        ));
        assert!(Patterns::new(&["".into()], "--exclude").is_err());
        assert!(pats(&[]).is_empty() && !pats(&[]).matches_within(Path::new("/a")));
    }

    #[test]
    fn list_files_skip_blanks_and_comments() {
        assert_eq!(
            lines("*.tmp\n\n  # note\n  /abs/x  \nsub/y"),
            ["*.tmp", "/abs/x", "sub/y"]
        );
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-c]{1,3}"
    }

    fn abs(components: &[String]) -> PathBuf {
        let mut p = PathBuf::from("/");
        p.extend(components);
        p
    }

    proptest! {
        /// A relative literal pattern matches exactly the paths that hold
        /// its components consecutively somewhere (or lie below such a path).
        #[test]
        fn relative_patterns_match_at_any_depth(
            path in prop::collection::vec(component(), 1..6),
            pattern in prop::collection::vec(component(), 1..3),
        ) {
            let p = Patterns::new(&[pattern.join("/")], "--x").unwrap();
            let expected = path.windows(pattern.len()).any(|w| w == pattern.as_slice());
            prop_assert_eq!(p.matches_within(&abs(&path)), expected);
            let ends_with = path.ends_with(&pattern);
            prop_assert_eq!(p.is_match(&abs(&path)), ends_with);
        }

        /// An absolute literal pattern matches the path it names and what
        /// lies below it, nothing else.
        #[test]
        fn absolute_patterns_are_anchored(
            path in prop::collection::vec(component(), 1..6),
            pattern in prop::collection::vec(component(), 1..3),
        ) {
            let p = Patterns::new(&[format!("/{}", pattern.join("/"))], "--x").unwrap();
            prop_assert_eq!(p.matches_within(&abs(&path)), path.starts_with(&pattern));
            prop_assert_eq!(p.is_match(&abs(&path)), path == pattern);
        }

        /// `*` never crosses a `/`; `**` crosses any number.
        #[test]
        fn star_stays_in_a_component_and_double_star_does_not(
            path in prop::collection::vec(component(), 1..6),
        ) {
            let star = Patterns::new(&["/*".into()], "--x").unwrap();
            prop_assert_eq!(star.is_match(&abs(&path)), path.len() == 1);
            prop_assert!(star.matches_within(&abs(&path)));
            let last = path.last().unwrap().clone();
            let deep = Patterns::new(&[format!("/**/{last}")], "--x").unwrap();
            prop_assert!(deep.is_match(&abs(&path)));
            let suffix = Patterns::new(&[format!("*{}", &last[last.len() - 1..])], "--x").unwrap();
            prop_assert!(suffix.is_match(&abs(&path)));
        }
    }
}
