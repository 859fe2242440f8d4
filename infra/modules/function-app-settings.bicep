// Writes the function app's application settings. The object is built in main.bicep (`appSettings`); it is
// @secure() because SlackWebhookUrl is a secret (IotHubEventsConnection is a Key Vault reference), so it never
// lands in the deployment history.

param functionAppName string

@secure()
param appSettings { *: string }

resource site 'Microsoft.Web/sites@2025-03-01' existing = {
  name: functionAppName
}

// The app settings src/config.ts reads at start-up. A PUT of `appsettings` replaces the whole set, so the current
// settings are read first and this template's settings override them: settings an operator adds by hand
// (Provisioning__Hooks, Provisioning__TwinTemplates, Provisioning__RegistryOpsPerMinute, Ingest__* tuning) survive
// a re-provision, while every setting main.bicep owns is reset to its template value.
resource settings 'Microsoft.Web/sites/config@2025-03-01' = {
  parent: site
  name: 'appsettings'
  properties: union(list('${site.id}/config/appsettings', '2025-03-01').properties, appSettings)
}
