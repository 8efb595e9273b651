//! Secret files other users can read: the token file, the TLS key, the
//! PFX and its password file. On Unix, readable by "others" (group access
//! is left alone: a service group is a common, deliberate setup); on
//! Windows, an allow entry in the file's DACL that lets Everyone, Users or
//! Authenticated Users read it (or no DACL at all).

use std::path::Path;

use crate::config::{Config, PfxPassword, TlsSource, TokenSource};

/// One warning per secret file that others can read.
pub(crate) fn warnings(config: &Config) -> Vec<String> {
    secret_files(config)
        .into_iter()
        .filter_map(|(key, path)| {
            readable_by_others(path).map(|who| {
                format!("{key} {} is readable by {who}: anyone with an account on this machine can read the secret; allow only the gateway's account", path.display())
            })
        })
        .collect()
}

fn secret_files(config: &Config) -> Vec<(&'static str, &Path)> {
    let mut files = Vec::new();
    match &config.tls.source {
        TlsSource::Pem { key, .. } => files.push(("tls.key", key.as_path())),
        TlsSource::Pfx { path, password } => {
            files.push(("tls.pfx", path.as_path()));
            if let PfxPassword::File(file) = password {
                files.push(("tls.pfx_password_file", file.as_path()));
            }
        }
    }
    let token = config.credential.as_ref().and_then(|c| c.token.as_ref());
    if let Some(TokenSource::File(path)) = token.map(|t| &t.source) {
        files.push(("credential.token_file", path.as_path()));
    }
    files
}

/// Who besides its owner may read `path`, if anyone.
#[cfg(unix)]
fn readable_by_others(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then_some("every user (mode o+r)")
}

#[cfg(windows)]
fn readable_by_others(path: &Path) -> Option<&'static str> {
    windows_acl::readable_by_others(path)
}

#[cfg(not(any(unix, windows)))]
fn readable_by_others(_path: &Path) -> Option<&'static str> {
    None
}

#[cfg(windows)]
mod windows_acl {
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;

    use windows_sys::Win32::Foundation::{LocalFree, ERROR_SUCCESS};
    use windows_sys::Win32::Security::Authorization::{GetNamedSecurityInfoW, SE_FILE_OBJECT};
    use windows_sys::Win32::Security::{
        GetAce, IsWellKnownSid, WinAuthenticatedUserSid, WinBuiltinUsersSid, WinWorldSid,
        ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
        WELL_KNOWN_SID_TYPE,
    };

    /// `ACCESS_ALLOWED_ACE_TYPE`.
    const ALLOWED: u8 = 0;
    /// FILE_READ_DATA, GENERIC_ALL, GENERIC_READ.
    const READS: u32 = 0x0000_0001 | 0x1000_0000 | 0x8000_0000;
    const BROAD: [(WELL_KNOWN_SID_TYPE, &str); 3] = [
        (WinWorldSid, "Everyone"),
        (WinBuiltinUsersSid, "Users"),
        (WinAuthenticatedUserSid, "Authenticated Users"),
    ];

    pub(super) fn readable_by_others(path: &Path) -> Option<&'static str> {
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `wide` is NUL-terminated; the out pointers are valid; the
        // descriptor (which owns `dacl`) is freed below with LocalFree.
        let status = unsafe {
            GetNamedSecurityInfoW(
                wide.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut dacl,
                std::ptr::null_mut(),
                &mut descriptor,
            )
        };
        if status != ERROR_SUCCESS {
            return None;
        }
        let found = if dacl.is_null() {
            Some("everyone (the file has no access list)")
        } else {
            // SAFETY: a DACL returned by GetNamedSecurityInfoW, alive
            // until the descriptor is freed.
            unsafe { broad_reader(dacl) }
        };
        // SAFETY: allocated by GetNamedSecurityInfoW for this call.
        unsafe { LocalFree(descriptor) };
        found
    }

    /// # Safety
    /// `dacl` must point to a valid ACL.
    unsafe fn broad_reader(dacl: *mut ACL) -> Option<&'static str> {
        let count = unsafe { (*dacl).AceCount };
        for index in 0..u32::from(count) {
            let mut ace: *mut core::ffi::c_void = std::ptr::null_mut();
            if unsafe { GetAce(dacl, index, &mut ace) } == 0 || ace.is_null() {
                continue;
            }
            let header = unsafe { &*(ace as *const ACE_HEADER) };
            if header.AceType != ALLOWED {
                continue;
            }
            let allowed = unsafe { &*(ace as *const ACCESS_ALLOWED_ACE) };
            if allowed.Mask & READS == 0 {
                continue;
            }
            let sid = (&allowed.SidStart as *const u32).cast_mut().cast();
            for (kind, name) in BROAD {
                if unsafe { IsWellKnownSid(sid, kind) } != 0 {
                    return Some(name);
                }
            }
        }
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_others_can_read_is_named_and_a_private_one_is_not() {
        let dir = std::env::temp_dir().join(format!("exposure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "x").unwrap();
        for (mode, exposed) in [(0o600, false), (0o640, false), (0o644, true), (0o604, true)] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(readable_by_others(&file).is_some(), exposed, "{mode:o}");
        }
        assert_eq!(readable_by_others(&dir.join("missing")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
