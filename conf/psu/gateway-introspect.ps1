# A PSU endpoint the gateway can use for session introspection with roles.
#
# Deploy it in PowerShell Universal (APIs > Endpoints, or endpoints.ps1),
# with authentication required so that PSU itself answers 401 for a missing
# or expired session cookie. Then point the gateway at it:
#
#   [session]
#   introspect_path = "/gateway/whoami"
#   identity_pointer = "/identity"
#   roles_pointer = "/roles"
#
# PSU fills $Identity and $Roles for authenticated endpoints.
New-PSUEndpoint -Url "/gateway/whoami" -Method @('GET') -Authentication -Endpoint {
    @{
        identity = $Identity
        roles    = @($Roles)
    } | ConvertTo-Json -Compress
} -ContentType 'application/json'
