//! What `demo` prints to try: curl lines, or PowerShell on Windows (where
//! Windows PowerShell 5.1 has no `-SkipCertificateCheck`, so the dev
//! certificate is trusted for the current user instead).

/// The shell the printed lines are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Posix,
    PowerShell,
}

impl Shell {
    /// PowerShell on Windows, curl elsewhere.
    pub fn native() -> Self {
        if cfg!(windows) {
            Shell::PowerShell
        } else {
            Shell::Posix
        }
    }
}

/// The five steps of the shared-token demo against `url`, trusting `ca`.
pub fn shared_token(shell: Shell, url: &str, ca: &str) -> Vec<String> {
    match shell {
        Shell::Posix => vec![
            "# 1. sign in through the gateway; the session cookie lands in the jar".into(),
            format!("curl --cacert {ca} -c /tmp/psu-jar -H 'Content-Type: application/json' -d '{{\"username\":\"admin\",\"password\":\"admin\"}}' {url}/api/v1/signin"),
            "# 2. the Management API with only the cookie: the gateway injects the app token -> 200 and the JSON list".into(),
            format!("curl --cacert {ca} -b /tmp/psu-jar {url}/api/v1/usersession"),
            "# 3. no cookie -> 401 problem+json, nothing forwarded".into(),
            format!("curl --cacert {ca} -i {url}/api/v1/usersession"),
            "# 4. a forged credential header is stripped and replaced -> still 200 with the gateway's token".into(),
            format!("curl --cacert {ca} -b /tmp/psu-jar -H 'X-PSU-Authorization: Bearer forged' {url}/api/v1/usersession"),
            "# 5. a forged credential without a session -> 401".into(),
            format!("curl --cacert {ca} -i -H 'X-PSU-Authorization: Bearer forged' {url}/api/v1/usersession"),
        ],
        Shell::PowerShell => vec![
            "# 0. trust the dev certificate for your user (or add -SkipCertificateCheck to each line on PowerShell 7)".into(),
            format!("Import-Certificate -FilePath '{ca}' -CertStoreLocation Cert:\\CurrentUser\\Root"),
            "# 1. sign in through the gateway; the session lands in $psu".into(),
            format!("Invoke-RestMethod {url}/api/v1/signin -Method Post -ContentType 'application/json' -Body '{{\"username\":\"admin\",\"password\":\"admin\"}}' -SessionVariable psu"),
            "# 2. the Management API with only the session cookie: the gateway injects the app token -> the list".into(),
            format!("Invoke-RestMethod {url}/api/v1/usersession -WebSession $psu"),
            "# 3. no session -> 401 problem+json, nothing forwarded".into(),
            format!("try {{ Invoke-RestMethod {url}/api/v1/usersession }} catch {{ $_.Exception.Response.StatusCode.value__; $_.ErrorDetails.Message }}"),
            "# 4. a forged credential header is stripped and replaced -> still the list, with the gateway's token".into(),
            format!("Invoke-RestMethod {url}/api/v1/usersession -WebSession $psu -Headers @{{ 'X-PSU-Authorization' = 'Bearer forged' }}"),
            "# 5. a forged credential without a session -> 401".into(),
            format!("try {{ Invoke-RestMethod {url}/api/v1/usersession -Headers @{{ 'X-PSU-Authorization' = 'Bearer forged' }} }} catch {{ $_.Exception.Response.StatusCode.value__ }}"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shells_walk_the_same_five_steps() {
        let url = "https://127.0.0.1:8443";
        for shell in [Shell::Posix, Shell::PowerShell] {
            let lines = shared_token(shell, url, "certs/gateway.crt");
            for step in 1..=5 {
                assert!(
                    lines.iter().any(|l| l.starts_with(&format!("# {step}. "))),
                    "{shell:?} lacks step {step}"
                );
            }
            let calls = lines
                .iter()
                .filter(|l| l.contains("/api/v1/usersession"))
                .count();
            assert_eq!(calls, 4, "{shell:?}");
        }
    }

    #[test]
    fn powershell_keeps_the_session_and_trusts_the_certificate() {
        let lines = shared_token(
            Shell::PowerShell,
            "https://h:1",
            "C:\\psu\\certs\\gateway.crt",
        );
        let text = lines.join("\n");
        assert!(text.contains("-SessionVariable psu"));
        assert!(text.contains("-WebSession $psu"));
        assert!(text.contains("Import-Certificate -FilePath 'C:\\psu\\certs\\gateway.crt'"));
        assert!(!text.contains("curl"));
        assert_eq!(
            Shell::native(),
            if cfg!(windows) {
                Shell::PowerShell
            } else {
                Shell::Posix
            }
        );
    }
}
