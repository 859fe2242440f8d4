// Key Vault holding the app's two secrets: the IoT Hub built-in endpoint connection string (the endpoint
// accepts shared access signatures only) and the key encrypting generated device keys at rest. The app settings
// are Key Vault references, so no key is ever an app setting; the function app's identity may read these two
// secrets and nothing else (function-roles.bicep).

param name string
param location string
param tags { *: string }

param iotHubEventsSecretName string

@secure()
@description('Connection string of the IoT Hub built-in endpoint (ServiceConnect-only policy).')
param iotHubEventsConnectionString string

param provisioningKeysSecretName string

@secure()
@description('32 random bytes, base64: Provisioning__KeysEncryptionKey.')
param provisioningKeysEncryptionKey string

param slackWebhookSecretName string

@description('Whether slackWebhookUrl is set (a plain flag: the secret itself never decides an output).')
param slackWebhookConfigured bool

@secure()
@description('Slack incoming webhook URL (SlackWebhookUrl; the URL is the credential). Empty: no secret is created.')
param slackWebhookUrl string = ''

// Cost: Standard vault, billed per 10,000 operations (App Service reads a reference at start and about daily).
// Azure RBAC instead of access policies; short soft-delete retention so that `azd down --purge` and a new
// environment of the same name work. Public network access stays on: Flex Consumption cannot resolve references
// to a network-restricted vault.
resource vault 'Microsoft.KeyVault/vaults@2026-02-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
  }
}

// The IoT Hub events connection string (rewritten on every provision, so a rotated policy key is picked up).
resource iotHubEventsSecret 'Microsoft.KeyVault/vaults/secrets@2026-02-01' = {
  parent: vault
  name: iotHubEventsSecretName
  properties: {
    value: iotHubEventsConnectionString
    contentType: 'Event Hubs connection string'
  }
}

// The key of the provisioning workflows' keys at rest (AES-256-GCM). Rotating it (a new value, then a restart)
// makes the keys still inside the results window unreadable: they are reported as such, outcomes stay.
resource provisioningKeysSecret 'Microsoft.KeyVault/vaults/secrets@2026-02-01' = {
  parent: vault
  name: provisioningKeysSecretName
  properties: {
    value: provisioningKeysEncryptionKey
    contentType: 'AES-256 key, base64'
  }
}

// The Slack incoming webhook: whoever has the URL can post to the channel, so it is a secret, not an app setting.
resource slackWebhookSecret 'Microsoft.KeyVault/vaults/secrets@2026-02-01' = if (slackWebhookConfigured) {
  parent: vault
  name: slackWebhookSecretName
  properties: {
    value: slackWebhookUrl
    contentType: 'Slack incoming webhook URL'
  }
}

output name string = vault.name
output iotHubEventsSecretName string = iotHubEventsSecret.name
@description('Versionless secret URI: the Key Vault reference always resolves the latest version.')
output iotHubEventsSecretUri string = iotHubEventsSecret.properties.secretUri
output provisioningKeysSecretName string = provisioningKeysSecret.name
@description('Versionless secret URI of Provisioning__KeysEncryptionKey.')
output provisioningKeysSecretUri string = provisioningKeysSecret.properties.secretUri
@description('Versionless secret URI of SlackWebhookUrl; empty when no webhook is configured.')
output slackWebhookSecretUri string = slackWebhookConfigured ? slackWebhookSecret!.properties.secretUri : ''
