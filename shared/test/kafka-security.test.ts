import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ConfigError, kafkaOptions, kafkaSecurity, librdkafkaSecurity, loadConfig } from '../src/index.js';

const configError = (env: Record<string, string>): ConfigError => {
  try {
    loadConfig(env);
  } catch (error) {
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
};

describe('Kafka TLS and SASL settings', () => {
  it('none by default', () => {
    expect(kafkaSecurity(loadConfig({}))).toEqual({});
  });

  it('TLS with the system CAs, or with a CA file read at start', () => {
    expect(kafkaSecurity(loadConfig({ KAFKA_SSL: 'true' }))).toEqual({ ssl: true });
    const ca = join(mkdtempSync(join(tmpdir(), 'kafka-ca-')), 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    expect(kafkaSecurity(loadConfig({ KAFKA_SSL_CA_FILE: ca }))).toEqual({
      ssl: { ca: ['-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'] },
    });
    expect(() => kafkaSecurity(loadConfig({ KAFKA_SSL_CA_FILE: '/no/such/ca.pem' }))).toThrow(
      /KAFKA_SSL_CA_FILE="\/no\/such\/ca.pem": cannot read it/,
    );
  });

  it('SASL PLAIN or SCRAM with a user and password, passed to every Kafka client of the process', () => {
    const config = loadConfig({
      KAFKA_BROKERS: 'kafka:9093',
      KAFKA_SSL: 'true',
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      KAFKA_SASL_USERNAME: 'tributary',
      KAFKA_SASL_PASSWORD: 's3cret-pass',
    });
    const sasl = { mechanism: 'scram-sha-512', username: 'tributary', password: 's3cret-pass' };
    expect(kafkaSecurity(config)).toEqual({ ssl: true, sasl });
    expect(kafkaOptions(config, 'inference-log')).toEqual({
      brokers: ['kafka:9093'],
      clientId: 'tributary-inference-log',
      sessionTimeout: 10_000,
      maxWaitTimeInMs: 100,
      kafka: { ssl: true, sasl },
    });
    expect(kafkaSecurity(loadConfig({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' })).sasl).toEqual({
      mechanism: 'plain',
      username: 'u',
      password: 'p',
    });
  });

  it('the same settings as librdkafka properties, for the prediction log producer', () => {
    expect(librdkafkaSecurity(loadConfig({}))).toEqual({});
    expect(librdkafkaSecurity(loadConfig({ KAFKA_SSL: 'true' }))).toEqual({ 'security.protocol': 'ssl' });
    expect(librdkafkaSecurity(loadConfig({ KAFKA_SSL_CA_FILE: '/etc/kafka/ca.pem' }))).toEqual({
      'security.protocol': 'ssl',
      'ssl.ca.location': '/etc/kafka/ca.pem',
    });
    const sasl = { KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' };
    expect(librdkafkaSecurity(loadConfig(sasl))).toEqual({
      'security.protocol': 'sasl_plaintext',
      'sasl.mechanisms': 'SCRAM-SHA-256',
      'sasl.username': 'u',
      'sasl.password': 'p',
    });
    expect(librdkafkaSecurity(loadConfig({ ...sasl, KAFKA_SASL_MECHANISM: 'plain', KAFKA_SSL: 'true' }))).toMatchObject({
      'security.protocol': 'sasl_ssl',
      'sasl.mechanisms': 'PLAIN',
    });
  });

  it('refuses incomplete or unknown SASL settings, and never prints the password', () => {
    expect(configError({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u' }).message).toContain(
      'KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD',
    );
    expect(configError({ KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' }).message).toContain(
      'KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD need KAFKA_SASL_MECHANISM',
    );
    expect(configError({ KAFKA_SASL_MECHANISM: 'gssapi' }).message).toContain(
      'KAFKA_SASL_MECHANISM="gssapi": must be one of plain, scram-sha-256, scram-sha-512',
    );
    const hidden = configError({ KAFKA_SASL_PASSWORD: ' ', PORT: 'x' });
    expect(hidden.message).toContain('KAFKA_SASL_PASSWORD=(value hidden): must not be empty');
  });
});
