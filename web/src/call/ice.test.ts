import { describe, expect, it } from 'vitest';

import { iceTransportPolicyFrom } from './ice';

describe('iceTransportPolicyFrom', () => {
  it('reads relay and all from the query', () => {
    expect(iceTransportPolicyFrom('?iceTransportPolicy=relay')).toBe('relay');
    expect(iceTransportPolicyFrom('?codec=vp9&iceTransportPolicy=all')).toBe('all');
  });

  it('leaves the browser default for anything else', () => {
    expect(iceTransportPolicyFrom('')).toBeUndefined();
    expect(iceTransportPolicyFrom('?iceTransportPolicy=none')).toBeUndefined();
  });
});
