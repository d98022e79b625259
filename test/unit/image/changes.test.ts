import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyChanges } from '../../../src/image/index.js';

describe('--change instructions', () => {
  it('apply CMD, ENTRYPOINT, ENV, LABEL, EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, ONBUILD', () => {
    const c = applyChanges({ Env: ['PATH=/bin', 'A=1'] }, [
      'CMD ["sh", "-c", "echo hi"]',
      'ENTRYPOINT /bin/init --flag',
      'ENV A=2 B="two words"',
      'ENV LEGACY value with spaces',
      'LABEL org.example.a=1 "b"=2',
      'EXPOSE 80 53/udp',
      'VOLUME ["/data"]',
      'USER 1000:1000',
      'WORKDIR /srv',
      'WORKDIR app',
      'STOPSIGNAL SIGTERM',
      'ONBUILD RUN echo base',
    ]);
    assert.deepEqual(c.Cmd, ['sh', '-c', 'echo hi']);
    assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c', '/bin/init --flag']);
    assert.deepEqual(c.Env, ['PATH=/bin', 'A=2', 'B=two words', 'LEGACY=value with spaces']);
    assert.deepEqual(c.Labels, { 'org.example.a': '1', b: '2' });
    assert.deepEqual(Object.keys(c.ExposedPorts ?? {}), ['80/tcp', '53/udp']);
    assert.deepEqual(Object.keys(c.Volumes ?? {}), ['/data']);
    assert.equal(c.User, '1000:1000');
    assert.equal(c.WorkingDir, '/srv/app');
    assert.equal(c.StopSignal, 'SIGTERM');
    assert.deepEqual(c.OnBuild, ['RUN echo base']);
  });

  it('refuses unknown or malformed instructions with the instruction named', () => {
    assert.throws(() => applyChanges({}, ['RUN echo']), /invalid --change "RUN echo": RUN is not supported/);
    assert.throws(() => applyChanges({}, ['EXPOSE eighty']), /"eighty" is not a port/);
    assert.throws(() => applyChanges({}, ['ENV A="open']), /unterminated/);
    assert.throws(() => applyChanges({}, ['']), /expected an instruction/);
  });
});
