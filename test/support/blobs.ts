import { BlobServiceClient } from '@azure/storage-blob';

/** Every blob in a container as name → text, read back through the real SDK from Azurite. */
export async function readContainer(
  connectionString: string,
  container: string,
): Promise<Map<string, string>> {
  const client = BlobServiceClient.fromConnectionString(connectionString).getContainerClient(container);
  const out = new Map<string, string>();
  if (!(await client.exists())) return out;
  for await (const blob of client.listBlobsFlat()) {
    const buffer = await client.getBlobClient(blob.name).downloadToBuffer();
    out.set(blob.name, buffer.toString('utf8'));
  }
  return out;
}

/** The JSON lines of every blob in a container, flattened. */
export async function readLines(
  connectionString: string,
  container: string,
): Promise<Record<string, unknown>[]> {
  const blobs = await readContainer(connectionString, container);
  return [...blobs.values()].flatMap((text) =>
    text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>),
  );
}
