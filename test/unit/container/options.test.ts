import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostsFile, resolvConfFile } from '../../../src/container/files.js';
import {
  mergeEnv,
  parseCpus,
  parseEnv,
  parseEnvFile,
  parseMemory,
  parsePidsLimit,
  parseVolume,
  validateSignal,
} from '../../../src/container/index.js';

describe('container run options', () => {
  it('memory sizes as docker reads them (binary units), with its 6 MB minimum', () => {
    assert.equal(parseMemory('512m'), 512 * 1024 * 1024);
    assert.equal(parseMemory('1g'), 1024 ** 3);
    assert.equal(parseMemory('1.5G'), 1.5 * 1024 ** 3);
    assert.equal(parseMemory('10485760'), 10485760);
    assert.equal(parseMemory('8MiB'), 8 * 1024 * 1024);
    assert.throws(() => parseMemory('lots'), /invalid argument "lots" for "--memory"/);
    assert.throws(() => parseMemory('1k'), /minimum memory limit allowed is 6MB/);
  });

  it('cpus and pids limits', () => {
    assert.equal(parseCpus('1.5'), 1.5);
    assert.equal(parseCpus('.5'), 0.5);
    assert.throws(() => parseCpus('-1'), /--cpus/);
    assert.throws(() => parseCpus('two'), /--cpus/);
    assert.equal(parsePidsLimit('100'), 100);
    assert.equal(parsePidsLimit('-1'), 0);
    assert.throws(() => parsePidsLimit('many'), /--pids-limit/);
  });

  it('-v SRC:DST[:ro]: absolute host paths only', () => {
    assert.deepEqual(parseVolume('/data:/mnt'), { source: '/data', destination: '/mnt', readOnly: false });
    assert.deepEqual(parseVolume('/data/:/mnt/x/:ro'), { source: '/data', destination: '/mnt/x', readOnly: true });
    assert.deepEqual(parseVolume('/a:/b:rw'), { source: '/a', destination: '/b', readOnly: false });
    assert.throws(() => parseVolume('named:/data'), /not an absolute path/);
    assert.throws(() => parseVolume('/a:rel'), /destination must be an absolute path/);
    assert.throws(() => parseVolume('/a:/'), /destination can't be '\/'/);
    assert.throws(() => parseVolume('/a:/b:rx'), /unknown mode/);
    assert.throws(() => parseVolume('/a'), /invalid volume specification/);
  });

  it('-e and --env-file as docker reads them; later values win', () => {
    assert.deepEqual(parseEnv(['A=1', 'B', 'C', 'D='], { B: 'host', C: undefined }), ['A=1', 'B=host', 'D=']);
    assert.throws(() => parseEnv(['=x'], {}), /invalid environment variable/);
    assert.deepEqual(parseEnvFile('# c\n\nX=1\n  Y=two words\nZ\r\n', 'f'), ['X=1', 'Y=two words', 'Z']);
    assert.throws(() => parseEnvFile('BAD KEY=1', 'env.list'), /env\.list:1: variable 'BAD KEY' contains whitespaces/);
    assert.deepEqual(mergeEnv(['A=1', 'B=1'], ['B=2', 'C=3']), ['A=1', 'B=2', 'C=3']);
  });

  it('signals by name or number', () => {
    assert.equal(validateSignal('TERM'), 'SIGTERM');
    assert.equal(validateSignal('sigkill'), 'SIGKILL');
    assert.equal(validateSignal('9'), '9');
    assert.equal(validateSignal('SIGRTMIN+3'), 'SIGRTMIN+3');
    assert.throws(() => validateSignal('SIGNOPE'), /invalid signal/);
    assert.throws(() => validateSignal('99'), /invalid signal/);
  });
});

describe('container /etc files', () => {
  it("hosts: the host's loopback entries (not the host's own name) and the hostname; the host file with network host", () => {
    const host =
      '127.0.0.1 localhost\n127.0.1.1 myhost.lan myhost\n127.0.0.1 svc.local # dev\n10.0.0.5 db\n::1 localhost ip6-localhost\n';
    const h = hostsFile('box', 'none', host, 'myhost.lan');
    assert.equal(h, '127.0.0.1\tlocalhost\n127.0.0.1\tsvc.local\n::1\tlocalhost ip6-localhost\n127.0.1.1\tbox\n');
    assert.equal(
      hostsFile('box', 'none', undefined),
      '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tbox\n',
    );
    assert.equal(hostsFile('box', 'host', '1.2.3.4 elsewhere'), '1.2.3.4 elsewhere\n');
  });

  it('resolv.conf keeps only loopback name servers with network none', () => {
    const host = 'search example.com\nnameserver 10.0.0.2\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n';
    assert.equal(
      resolvConfFile(host, 'none'),
      'search example.com\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n',
    );
    assert.equal(resolvConfFile(host, 'host'), host);
    assert.equal(resolvConfFile('nameserver 8.8.8.8\n', 'none'), '');
    assert.equal(resolvConfFile(undefined, 'none'), '');
  });
});
