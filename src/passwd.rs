//! /etc/passwd lookups by uid: the host's (`list` shows owner names) and the container's (the
//! init adds HOME, as runc does).

/// Field `index` (0 name, 5 home, ...) of the first line of `text` whose uid field is `uid`.
pub fn field_for_uid(text: &str, uid: u32, index: usize) -> Option<&str> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > index.max(2) && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[index])
    })
}

#[cfg(test)]
mod tests {
    use super::field_for_uid;

    #[test]
    fn finds_the_first_entry_of_a_uid() {
        let t = "root:x:0:0:root:/root:/bin/sh\nbad line\napp:x:1000:1000::/home/app:/bin/sh\ndup:x:1000:1::/d:/\n";
        assert_eq!(field_for_uid(t, 0, 0), Some("root"));
        assert_eq!(field_for_uid(t, 1000, 5), Some("/home/app"));
        assert_eq!(field_for_uid(t, 1000, 0), Some("app"));
        assert_eq!(field_for_uid(t, 7, 0), None);
        assert_eq!(field_for_uid("short:x:7", 7, 5), None);
    }
}
