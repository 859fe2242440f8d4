// Data Lake Storage Gen2 account for the raw telemetry archive, dead letters and the provisioning workflows'
// private blobs (the app reaches all four containers through one blob service, ArchiveStorage__blobServiceUri).

param name string
param location string
param tags { *: string }

@description('Private blob containers to create.')
param containerNames string[]

@description('Raw archive container; its blobs move to the Cool tier after coolAfterDays.')
param rawArchiveContainerName string

@minValue(1)
param coolAfterDays int = 30

@description('Container of the provisioning workflows\' work blobs (generated keys under keys/, chunk results under results/).')
param provisioningWorkContainerName string

@description('Container of the provisioning results ({instanceId}.jsonl, device keys for a bounded window).')
param provisioningResultsContainerName string

@minValue(1)
@description('Days after which key-bearing provisioning blobs are deleted: Provisioning__KeysRetentionHours rounded up.')
param keysRetentionDays int

// Cost: Standard LRS, Hot tier for recent data; the lifecycle rule below moves the raw archive to Cool. The
// hierarchical namespace makes the archive (stream/yyyy/MM/dd/HH/...) a directory tree for Spark, Synapse or
// Fabric at no extra storage cost. Shared keys and public blob access are off: the app uses its managed identity.
resource account 'Microsoft.Storage/storageAccounts@2025-06-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    isHnsEnabled: true
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
  }
}

// Blob service of the account (parent of the containers).
resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-06-01' = {
  parent: account
  name: 'default'
}

// The app's containers, all private: the results and work containers hold device keys (ADR 0006).
resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = [
  for containerName in containerNames: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

// Cost: raw telemetry is write-once and rarely read after a month, so it moves to the Cool tier.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2025-06-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'raw-archive-to-cool'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${rawArchiveContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                tierToCool: {
                  daysAfterModificationGreaterThan: coolAfterDays
                }
              }
            }
          }
        }
        // Backstop of the keys' retention window (the app drops expired keys itself, hourly): whatever still
        // holds device keys, or outcomes of a run, is deleted once it is older than the window. Lifecycle
        // management runs about once a day, so a blob may outlive the window by up to a day.
        {
          name: 'provisioning-keys-expire'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${provisioningWorkContainerName}/keys/'
                '${provisioningWorkContainerName}/results/'
                '${provisioningResultsContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: keysRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    containers
  ]
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
