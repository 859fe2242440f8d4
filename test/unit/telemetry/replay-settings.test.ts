import { describe, expect, it } from 'vitest';
import { groupFrom, settingFrom } from '../../../tools/replay/settings.js';

const SAMPLE = {
  ArchiveStorageConnectionString: 'UseDevelopmentStorage=true',
  RawArchiveContainerName: 'raw',
};

describe('npm run replay settings', () => {
  it('an identity endpoint in the environment beats the sample connection string (one source decides a group)', () => {
    const env = { ArchiveStorage__blobServiceUri: 'https://prod.blob.core.windows.net' };
    expect(
      groupFrom([env, {}, SAMPLE], ['ArchiveStorageConnectionString', 'ArchiveStorage__blobServiceUri']),
    ).toEqual({ name: 'ArchiveStorage__blobServiceUri', value: 'https://prod.blob.core.windows.net' });
  });

  it('within one source the connection string is preferred; empty values count as unset', () => {
    const file = { ArchiveStorageConnectionString: ' ', ArchiveStorage__blobServiceUri: 'https://a.blob' };
    const both = { ArchiveStorageConnectionString: 'cs', ArchiveStorage__blobServiceUri: 'https://b.blob' };
    const names = ['ArchiveStorageConnectionString', 'ArchiveStorage__blobServiceUri'];
    expect(groupFrom([{}, file, SAMPLE], names)?.value).toBe('https://a.blob');
    expect(groupFrom([both], names)?.name).toBe('ArchiveStorageConnectionString');
    expect(groupFrom([{}, {}], names)).toBeUndefined();
  });

  it('a single setting comes from the highest source that has it', () => {
    expect(settingFrom([{}, { RawArchiveContainerName: 'mine' }, SAMPLE], 'RawArchiveContainerName')).toBe(
      'mine',
    );
    expect(settingFrom([{}, {}, SAMPLE], 'RawArchiveContainerName')).toBe('raw');
  });
});
