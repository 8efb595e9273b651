//! Simulator users from `--user NAME:PASSWORD:ROLES` flags and a TOML users file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::Secret;
use crate::sim::SimUser;

/// Why a users file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UsersFileError {
    #[error("cannot read users file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("users file {} is not valid: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("users file {}: user #{index} has an empty name", path.display())]
    EmptyName { path: PathBuf, index: usize },
}

/// `[[user]]` tables: `name`, `password`, `roles`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<FileUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    name: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// Parses `NAME:PASSWORD:ROLE1,ROLE2`. The name ends at the first colon and
/// the roles start after the last one, so a password may contain colons.
/// The roles part may be empty (`bob:pw:`).
pub fn parse_user_spec(spec: &str) -> Result<SimUser, String> {
    let usage = || format!("expected NAME:PASSWORD:ROLE1,ROLE2, got {:?}", redact(spec));
    let (name, rest) = spec.split_once(':').ok_or_else(usage)?;
    let (password, roles) = rest.rsplit_once(':').ok_or_else(usage)?;
    if name.trim().is_empty() {
        return Err(usage());
    }
    Ok(SimUser {
        name: name.trim().to_owned(),
        password: Secret::new(password),
        roles: roles
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Error messages show the name only: the rest of a spec is a password.
fn redact(spec: &str) -> String {
    match spec.split_once(':') {
        Some((name, _)) => format!("{name}:..."),
        None => spec.to_owned(),
    }
}

/// Reads a users file.
pub fn load_users_file(path: &Path) -> Result<Vec<SimUser>, UsersFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| UsersFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_users(&text, path)
}

fn parse_users(text: &str, path: &Path) -> Result<Vec<SimUser>, UsersFileError> {
    let file: UsersFile = toml::from_str(text).map_err(|source| UsersFileError::Parse {
        path: path.to_owned(),
        source,
    })?;
    file.user
        .into_iter()
        .enumerate()
        .map(|(index, user)| {
            if user.name.trim().is_empty() {
                return Err(UsersFileError::EmptyName {
                    path: path.to_owned(),
                    index: index + 1,
                });
            }
            Ok(SimUser {
                name: user.name.trim().to_owned(),
                password: Secret::new(user.password),
                roles: user.roles,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_specs_split_name_password_and_roles() {
        let user = parse_user_spec("ops:pa:ss:Administrator, Operator").unwrap();
        assert_eq!(user.name, "ops");
        assert_eq!(user.password.expose(), "pa:ss");
        assert_eq!(user.roles, ["Administrator", "Operator"]);
        assert!(parse_user_spec("bob:pw:").unwrap().roles.is_empty());
        for bad in ["bob", "bob:pw", ":pw:Reader"] {
            assert!(parse_user_spec(bad).is_err(), "{bad}");
        }
        let error = parse_user_spec("bob:hunter2").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn users_file_lists_user_tables() {
        let text = "[[user]]\nname = \"ops\"\npassword = \"pw\"\nroles = [\"Administrator\"]\n\n[[user]]\nname = \"guest\"\npassword = \"g\"\n";
        let users = parse_users(text, Path::new("users.toml")).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].roles, ["Administrator"]);
        assert!(users[1].roles.is_empty());
        assert!(matches!(
            parse_users("[[user]]\nname = \"x\"\n", Path::new("u")),
            Err(UsersFileError::Parse { .. })
        ));
        assert!(matches!(
            parse_users(
                "[[user]]\nname = \"x\"\npassword = \"p\"\nrole = []\n",
                Path::new("u")
            ),
            Err(UsersFileError::Parse { .. })
        ));
        assert!(matches!(
            parse_users("[[user]]\nname = \" \"\npassword = \"p\"\n", Path::new("u")),
            Err(UsersFileError::EmptyName { index: 1, .. })
        ));
    }
}
