"""The console's screens, one module per area: mail, health, outbound, accounts, tenants."""
