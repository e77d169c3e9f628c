//! Default output directories: `runs/<stem>-<unix seconds>`, with `-2`,
//! `-3`, … appended when that exists already (two runs started within the
//! same second must not write into one directory).

use std::path::PathBuf;

pub fn fresh(stem: &str) -> PathBuf {
    fresh_in(&PathBuf::from("runs"), stem)
}

pub fn fresh_in(root: &std::path::Path, stem: &str) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let base = format!("{stem}-{secs}");
    let mut dir = root.join(&base);
    let mut n = 2;
    while dir.exists() {
        dir = root.join(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_taken_name_gets_a_suffix() {
        let root = std::env::temp_dir().join(format!("longmem-rundir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let a = super::fresh_in(&root, "x");
        std::fs::create_dir_all(&a).unwrap();
        let b = super::fresh_in(&root, "x");
        assert_ne!(a, b);
        assert!(b.file_name().unwrap().to_str().unwrap().starts_with(a.file_name().unwrap().to_str().unwrap()));
        let _ = std::fs::remove_dir_all(&root);
    }
}
