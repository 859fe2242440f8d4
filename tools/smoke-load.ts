/**
 * Loads the built composition root with plain Node (not the test runner's module loader), as the Functions
 * host does, to catch module-format problems such as a CommonJS package without ESM named exports.
 * Run by .ci/run after the build: `node dist/tools/smoke-load.js`.
 */
const placeholders: Record<string, string> = {
  IotHubEventsConnection: 'Endpoint=sb://localhost/;SharedAccessKeyName=smoke;SharedAccessKey=smoke',
  IotHubEventHubName: 'smoke',
  IngestConsumerGroup: 'smoke',
  AnomaliesEventHubConnection: 'Endpoint=sb://localhost/;SharedAccessKeyName=smoke;SharedAccessKey=smoke',
  AnomaliesEventHubName: 'smoke',
  AnomaliesConsumerGroup: 'smoke',
  CosmosDb__accountEndpoint: 'https://127.0.0.1:8081/',
  CosmosDbKey: 'c21va2U=',
  ArchiveStorageConnectionString: 'UseDevelopmentStorage=true',
  IotHubHostName: 'localhost',
  IdentityStorageConnectionString: 'UseDevelopmentStorage=true',
  IdentityStore__EncryptionKey: Buffer.alloc(32, 1).toString('base64'),
};
for (const [name, value] of Object.entries(placeholders)) process.env[name] ??= value;

const silence = console.warn;
console.warn = () => undefined; // the library warns that it runs without a Functions host
try {
  await import('../src/index.js');
} finally {
  console.warn = silence;
}
console.log('smoke-load: dist/src/index.js loads under plain Node');
