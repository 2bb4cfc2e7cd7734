import { CfnResource, Stack } from 'aws-cdk-lib';
import { Construct, IConstruct } from 'constructs';

/** CloudFormation's hard limit on resources in one stack. */
export const CLOUDFORMATION_RESOURCE_LIMIT = 500;

/** Number of CloudFormation resources that belong to the given stack itself (not to its nested stacks). */
export function countStackResources(stack: Stack): number {
  return stack.node.findAll().filter((c) => CfnResource.isCfnResource(c) && Stack.of(c) === stack).length;
}

/**
 * A resource-less construct, one per stack, whose validation fails synth when the
 * stack exceeds CloudFormation's resource limit, and says how to split.
 */
class StackResourceBudget extends Construct {
  constructor(stack: Stack, id: string, constructName: string, resourcesPerConstruct: number) {
    super(stack, id);
    this.node.addValidation({
      validate: () => {
        const count = countStackResources(stack);
        if (count <= CLOUDFORMATION_RESOURCE_LIMIT) return [];
        const perStack = Math.floor((CLOUDFORMATION_RESOURCE_LIMIT - 20) / resourcesPerConstruct);
        return [
          `Stack '${stack.node.path}' holds ${count} CloudFormation resources, over the limit of ${CLOUDFORMATION_RESOURCE_LIMIT}. ` +
          `Each ${constructName} adds about ${resourcesPerConstruct} resources, so one stack fits about ${perStack} of them. ` +
          `Split them across stacks, for example NestedStacks of at most ${perStack} each (new NestedStack(this, 'Channels1')), ` +
          'passing the same bus and shared connection to each.',
        ];
      },
    });
  }
}

/** Ensures `scope`'s stack carries the resource-budget check (added once per stack). */
export function addStackResourceBudgetCheck(scope: IConstruct, constructName: string, resourcesPerConstruct: number): void {
  const stack = Stack.of(scope);
  const id = `CdkEventFabricResourceBudget${constructName}`;
  if (!stack.node.tryFindChild(id)) {
    new StackResourceBudget(stack, id, constructName, resourcesPerConstruct);
  }
}
