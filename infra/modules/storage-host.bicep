// Storage account of the Functions host: AzureWebJobsStorage (Event Hubs checkpoints and leases), the Durable
// Functions task hub (queues, tables, blobs) and the Flex Consumption deployment package container. Kept apart
// from the data account so that host traffic and app data never share limits, keys or lifecycle rules.

param name string
param location string
param tags { *: string }

@description('Blob container Flex Consumption deploys the app package to.')
param deploymentContainerName string

// Cost: Standard LRS; the task hub and checkpoints are small. No hierarchical namespace (the host and the
// Durable Functions Azure Storage provider expect a plain blob/queue/table account). Shared keys are off: the
// host connects with its managed identity (AzureWebJobsStorage__accountName).
resource account 'Microsoft.Storage/storageAccounts@2025-06-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
  }
}

// Blob service of the account (parent of the deployment container).
resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-06-01' = {
  parent: account
  name: 'default'
}

// Where `azd deploy` uploads the zip package and Flex Consumption reads it from (private).
resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainer.name
