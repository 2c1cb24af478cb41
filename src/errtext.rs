//! Error texts as Go prints them ("no such file or directory"): engines match these substrings.

pub fn errno(e: nix::errno::Errno) -> String {
    let d = e.desc();
    let mut c = d.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

pub fn io(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno(nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}
