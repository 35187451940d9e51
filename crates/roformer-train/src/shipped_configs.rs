//! The pretraining configs of the repository's `configs/` folder, built into the library,
//! so an installed `roformer` runs `--config configs/tiny.toml` (the quick start) from any
//! directory: a config path that does not exist there and names one of these files reads
//! the built-in copy.

use std::path::Path;

/// The shipped pretraining configs, by file name.
const SHIPPED: [(&str, &str); 3] = [
    ("tiny.toml", include_str!("../../../configs/tiny.toml")),
    ("small.toml", include_str!("../../../configs/small.toml")),
    ("base.toml", include_str!("../../../configs/base.toml")),
];

/// The built-in text for `path`, when no file is there and its name is a shipped config's.
pub fn shipped_config(path: &Path) -> Option<&'static str> {
    if path.exists() {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    SHIPPED
        .iter()
        .find(|(shipped, _)| *shipped == name)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TrainConfig;

    #[test]
    fn a_missing_shipped_config_reads_the_built_in_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("configs").join("tiny.toml");
        let built_in = TrainConfig::from_file(&path).unwrap();
        let repository = TrainConfig::from_file(Path::new("../../configs/tiny.toml")).unwrap();
        assert_eq!(built_in.to_toml_string(), repository.to_toml_string());
        // A file that exists is read as it is; another missing name is an error.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let edited = SHIPPED[0].1.replace("steps = 700", "steps = 3");
        std::fs::write(&path, edited).unwrap();
        let read = TrainConfig::from_file(&path).unwrap();
        assert_eq!(read.training.steps, Some(3));
        assert_eq!(built_in.training.steps, Some(700));
        assert!(TrainConfig::from_file(&dir.path().join("other.toml")).is_err());
    }
}
