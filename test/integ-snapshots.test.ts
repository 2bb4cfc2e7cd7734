import { integApps, readSnapshot, synthTemplates } from '../integ/snapshot';

const HOW_TO_UPDATE = 'If the change is intended, run `npx projen integ:snapshot` and review the snapshot diff.';

describe('integ snapshots match the committed templates', () => {
  test('there is at least one integ app', () => {
    expect(integApps().length).toBeGreaterThan(0);
  });

  test.each(integApps())('%s', (appFile) => {
    const committed = readSnapshot(appFile);
    const current = synthTemplates(appFile);
    const files = (m: Map<string, string>) => ({ files: [...m.keys()].sort(), hint: HOW_TO_UPDATE });
    expect(files(current)).toEqual(files(committed));
    for (const [file, text] of current) {
      // Compare parsed JSON so the failure shows the changed paths, not one long line.
      const expected = { file, template: JSON.parse(committed.get(file)!), hint: HOW_TO_UPDATE };
      expect({ file, template: JSON.parse(text), hint: HOW_TO_UPDATE }).toEqual(expected);
    }
  });
});
