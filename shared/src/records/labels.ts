import type { Static } from 'typebox';
import { Type } from '../typebox.js';
import { REQUEST_ID_MAX_LENGTH, WELL_FORMED, WELL_FORMED_TEXT } from './predictions.js';
import { EventTimeSchema } from './validation.js';

/** A label on the `labels` topic: the outcome for the prediction made under `request_id`. */
export const LabelSchema = Type.Object(
  {
    request_id: Type.String({ minLength: 1, maxLength: REQUEST_ID_MAX_LENGTH, pattern: WELL_FORMED, description: WELL_FORMED_TEXT }),
    label: Type.Union([Type.Literal(0), Type.Literal(1)]),
    ts: EventTimeSchema,
  },
  { additionalProperties: false },
);
export type Label = Static<typeof LabelSchema>;
